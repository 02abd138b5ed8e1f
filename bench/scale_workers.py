"""Completed executions per second with 1, 2 and 4 worker processes, and the ratio to one worker.

    python bench/scale_workers.py [--executions 3000] [--workers 1,2,4] [--states 10]

For each worker count: a fresh redis-server, one front door and the workers. The executions are
started first with no worker running, their drive messages (each carrying up to OPENFNF_DRIVE_BATCH
executions) are parked in another list once they carry every execution, the
workers are started and wait idle (heartbeat state `ready`), then the backlog is moved back onto
the drives queue in one RENAME and the clock runs until the workers' /metrics count every
execution as Succeeded. So the figure is the workers' throughput, not the front door's or the
start-up's. Needs the test extra (the official SDK starts the executions).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openfnf.redisserver import free_port, start_redis  # noqa: E402  (after the sys.path line above)

KEY_ID, SECRET = "LTAIbenchscale000001", "bench-secret-0123456789"
QUEUE, PARKED = "openfnf.drives", "bench.parked"


def pass_flow(n: int) -> str:
    """n Pass states in a row, then Succeed: one drive per execution."""
    states = "".join(f"  - Type: Pass\n    Name: P{i}\n    Next: {'P' + str(i + 1) if i + 1 < n else 'Done'}\n" for i in range(n))
    return f"Type: StateMachine\nSpecVersion: v1\nName: bench\nStartAt: P0\nStates:\n{states}  - Type: Succeed\n    Name: Done\n"


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "openfnf", *args], env=env, stdout=out, stderr=out, cwd=ROOT)


def wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def queued_executions(r: redis.Redis) -> int:
    """Executions the drive messages on the queue carry: a message carries up to OPENFNF_DRIVE_BATCH tags
    (common/taskmsg.py), so the list's length is not the count."""
    total = 0
    for raw in r.lrange(QUEUE, 0, -1):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        total += len(body[0])
    return total


def succeeded(ports: list[int]) -> float:
    """Executions the workers have finished as Succeeded, from their /metrics."""
    total = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith('openfnf_executions_total{status="Succeeded"}'):
                    total += float(line.split()[-1])
    return total


def run(workers: int, executions: int, states: int, work: Path) -> float:
    """Executions per second for this many workers."""
    from alibabacloud_fnf20190315 import models
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    work.mkdir(parents=True)
    server = start_redis(work / "redis", aof=False)
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
    env.update(
        OPENFNF_REDIS_URL=server.url, OPENFNF_ACCESS_KEY_ID=KEY_ID, OPENFNF_ACCESS_KEY_SECRET=SECRET,
        OPENFNF_PORT=str(api_port), OPENFNF_LOG_LEVEL="WARNING", OPENFNF_HEARTBEAT_INTERVAL_SECONDS="0.2",
        OPENFNF_WAKE_AFTER_MS="600000",  # no safety-net re-drives during the measurement
        OPENFNF_PURE_AT_START_EVENTS="0",  # the workers' throughput: the Pass flows go to them (common/purestart.py)
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    r = redis.Redis.from_url(server.url)
    try:
        procs.append(spawn(["api"], env, work / "api.log"))
        wait(lambda: _listening(api_port), 60, "the front door")
        client = Client(Config(access_key_id=KEY_ID, access_key_secret=SECRET, endpoint=f"127.0.0.1:{api_port}", protocol="http", region_id="cn-hangzhou"))
        client.create_flow(models.CreateFlowRequest(name="bench", definition=pass_flow(states), description="", type="FDL"))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.start_execution(models.StartExecutionRequest(flow_name="bench", execution_name=f"b{i}", input=json.dumps({"i": i}))), range(executions)))
        wait(lambda: queued_executions(r) >= executions, 30, "the drive messages")
        r.rename(QUEUE, PARKED)
        metrics_ports = []
        for w in range(workers):
            port = free_port()
            metrics_ports.append(port)
            wenv = {**env, "OPENFNF_METRICS_PORT": str(port), "OPENFNF_HEARTBEAT_FILE": str(work / f"w{w}.alive")}
            procs.append(spawn(["worker", "--hostname", f"bench{w}@%h"], wenv, work / f"worker{w}.log"))
        wait(lambda: all(_ready(work / f"w{w}.alive") for w in range(workers)), 120, "the workers")
        started = time.perf_counter()
        r.rename(PARKED, QUEUE)
        wait(lambda: succeeded(metrics_ports) >= executions, 600, "the executions")
        return executions / (time.perf_counter() - started)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _ready(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("state") == "ready")
    except (OSError, ValueError):
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--executions", type=int, default=3000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--states", type=int, default=10, help="Pass states per execution")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="openfnf-bench-"))
    try:
        rates = {w: run(w, args.executions, args.states, work / f"w{w}") for w in counts}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rates[counts[0]]
    print(f"{args.executions} executions of a {args.states}-state Pass flow, {os.cpu_count()} CPUs")
    print(f"{'workers':>8} {'exec/s':>10} {'ratio':>8}")
    for w in counts:
        print(f"{w:>8} {rates[w]:>10.0f} {rates[w] / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
