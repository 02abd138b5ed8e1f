"""The bare limits, measured in the same run: an aiohttp no-op, SET NX on the same redis-server, a no-op Celery task."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from typing import Any

import redis

from bench.celerybare import QUEUE, TASK
from bench.context import Ctx
from bench.measure import cpu_seconds, load, wait_until
from bench.services import Processes, base_env
from common.redisurl import for_kombu
from common.taskmsg import redis_task_message
from openfnf.redisserver import free_port, start_redis, wait_for_port


def noop_http(ctx: Ctx) -> dict[str, Any]:
    """The same client and load as scenario 1 against an aiohttp handler that does nothing (best of sizes.repeat)."""
    result = ctx.best("aiohttp no-op", lambda: _noop_once(ctx), lambda r: float(r["rate"]))
    ctx.facts["noop"] = result
    return result


def _noop_once(ctx: Ctx) -> dict[str, Any]:
    procs = Processes(ctx.sub("noop"))
    port = free_port()
    try:
        proc = procs.start("noop", [sys.executable, "-m", "bench.noop", str(port)], base_env())
        wait_for_port(port, proc)
        s = ctx.sizes
        cpu0 = cpu_seconds(proc.pid)
        result = load({"host": "127.0.0.1", "port": port, "kind": "noop", "duration": s.duration, "warmup": s.warmup,
                       "concurrency": s.concurrency})  # fmt: skip
        # Server CPU over warm-up and window, answers counted in the window only: scale to the window.
        result["server_cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / max(1, result["ok"]) * 1e6 * s.duration / (s.duration + s.warmup)
    finally:
        procs.stop_all()
    return result


def redis_setnx(ctx: Ctx) -> dict[str, float]:
    """Round trips per second of SET NX on a redis-server started as OpenFnF's (AOF everysec, unix socket)."""
    server = start_redis(ctx.sub("redis-bare") / "redis", aof=True)
    out: dict[str, float] = {}
    try:
        bench = shutil.which("redis-benchmark")
        n = int(20000 * ctx.sizes.duration / 10) * 5
        if bench:
            where = ["-s", server.url.removeprefix("unix://")] if server.url.startswith("unix://") else ["-p", server.url.rsplit(":", 1)[1].split("/")[0]]
            for label, extra in (("c64", ["-c", "64"]), ("c1", ["-c", "1"]), ("c64_p16", ["-c", "64", "-P", "16"])):
                count = n if label != "c1" else n // 5
                run = subprocess.run(
                    [bench, *where, *extra, "-n", str(count), "-r", "100000000", "-q", "SET", "bn:__rand_int__", "v", "NX"],
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                m = re.findall(r"([\d.]+) requests per second", run.stdout)
                if m:
                    out[label] = float(m[-1])
            out["tool"] = 1.0
        r = redis.Redis.from_url(server.url)
        deadline, i = time.perf_counter() + min(3.0, ctx.sizes.duration / 2), 0
        t0 = time.perf_counter()
        while time.perf_counter() < deadline:
            r.set(f"bp:{i}", "v", nx=True)
            i += 1
        out["redis_py_c1"] = i / (time.perf_counter() - t0)
        r.close()
    finally:
        server.stop()
    ctx.facts["setnx"] = out
    return out


def celery_noop(ctx: Ctx, workers: int) -> float:
    """No-op Celery tasks per second with `workers` solo worker processes (best of sizes.repeat)."""
    rate, cpu_us = ctx.best(f"Celery, {workers} worker(s)", lambda: _celery_once(ctx, workers), lambda r: r[0])
    ctx.facts[f"celery{workers}"], ctx.facts[f"celery{workers}_cpu_us"] = rate, cpu_us
    return rate


def _celery_once(ctx: Ctx, workers: int) -> tuple[float, float]:
    """No-op Celery tasks per second with `workers` solo worker processes (same config as OpenFnF's drives)."""
    sub = ctx.sub(f"celery-bare-{workers}")
    server = start_redis(sub / "redis", aof=True)
    procs = Processes(sub)
    r = redis.Redis.from_url(server.url)
    try:
        env = base_env()
        env["BENCH_BROKER_URL"] = for_kombu(server.url)
        for i in range(workers):
            procs.start(f"celery{i}", [sys.executable, "-m", "celery", "-A", "bench.celerybare", "worker", "--pool=solo",
                                      f"--hostname=b{i}@bench", f"-Q{QUEUE}", "--without-gossip", "--without-mingle",
                                      "--without-heartbeat", "--loglevel=WARNING"], env)  # fmt: skip
        # Ready when each worker consumed one probe.
        r.lpush(QUEUE, *(redis_task_message(TASK, [-1], QUEUE) for _ in range(workers * 2)))
        if not wait_until(lambda: r.llen(QUEUE) == 0 and r.hlen("unacked") == 0, 120, 0.1):
            raise RuntimeError(f"bare Celery workers did not start; see {sub}")
        time.sleep(1.0)
        n = ctx.sizes.celery
        messages = [redis_task_message(TASK, [i], QUEUE) for i in range(n)]
        pids = [p.pid for p in procs.procs.values()]
        cpu0 = sum(cpu_seconds(p) for p in pids)
        t0 = time.perf_counter()
        for k in range(0, n, 1000):
            r.lpush(QUEUE, *messages[k : k + 1000])
        wait_until(lambda: r.llen(QUEUE) == 0 and r.hlen("unacked") == 0, 300, 0.02)
        rate = n / (time.perf_counter() - t0)
        cpu_us = (sum(cpu_seconds(p) for p in pids) - cpu0) / n * 1e6
    finally:
        procs.stop_all()
        r.close()
        server.stop()
    return rate, cpu_us
