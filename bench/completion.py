"""Scenarios 2 and 4, and the worker scaling rows: how many executions end per second.

A batch of N executions is started as fast as the load client goes (64 connections, unique
names) while the workers run; the rate is N over the span from the first execution's start to the
last one's end, both taken from the executions' own records (OpenFnF: `started`/`stopped` in Redis;
moto: startDate/stopDate from ListExecutions), so polling for the end does not distort it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis

from bench import peer, profiling
from bench.context import Ctx
from bench.flows import asl_map_pass, asl_pass_chain, fdl_map_calls, fdl_pass_chain
from bench.measure import Ended, cpu_seconds, load, rss_bytes, wait_ended
from bench.services import KEY_ID, SECRET, OpenFnF
from bench.table import Row
from common import keys


@dataclass
class Batch:
    """One batch's outcome."""

    ended: Ended
    start_rate: float  # StartExecution accepted/s while the workers ran
    history_events: float = 0.0  # average history events of an execution (ours)
    extra: dict[str, Any] | None = None
    cpu_us: dict[str, float] | None = None  # CPU microseconds per execution: api, workers, redis, timers (ours)
    idle_us_per_s: dict[str, float] | None = None  # `idle`: CPU µs per second of each process while nothing ran
    window_s: float = 0.0  # seconds over which cpu_us was counted


def ours_batch(ctx: Ctx, label: str, definition: str, n: int, workers: int, raw_input: str | None = None,
               profile: str | None = None, timeout: float = 600.0, env: dict[str, str] | None = None,
               extra_pids: dict[str, list[int]] | None = None, cluster: int = 0, broker: bool = False,
               idle: float = 0.0) -> Batch:  # fmt: skip
    """Start n executions of `definition` on a fresh OpenFnF with `workers` worker processes; wait for all.
    `cluster`: the state on a Redis Cluster of that many primaries; `broker`: the broker on a redis-server
    of its own (always with a cluster). CPU is then counted per redis-server (services.OpenFnF.redis_pids).
    `idle`: seconds to count each process's CPU with nothing to do first (the timers' polling, a cluster's gossip)."""
    workdir = ctx.sub(f"{label}-w{workers}")
    if env and "OPENFNF_BROKER_URL" in env:  # queues of its own on a shared broker: no leftovers of another batch
        env = {"OPENFNF_DRIVE_QUEUE": f"{workdir.name}.drives", "OPENFNF_ACTIVITY_QUEUE": f"{workdir.name}.activities", **env}
    svc = OpenFnF(workdir, workers=workers, api_processes=ctx.sizes.front_doors, env=env, cluster=cluster, broker=broker).start()
    try:
        flow_id = svc.create_flow("f", definition)
        assert svc.r is not None
        spec: dict[str, Any] = {"host": "127.0.0.1", "port": svc.port, "kind": "fnf", "key_id": KEY_ID, "secret": SECRET,
                                "flow": "f", "concurrency": ctx.sizes.concurrency, "duration": 600, "keep_indexes": True}  # fmt: skip
        if raw_input is not None:
            spec["input"] = raw_input
        warm = load({**spec, "prefix": "w", "count": min(50, n)})  # every worker parses the flow, scripts load
        wait_ended(svc.r, flow_id, [f"w{i}" for i in warm["ok_indexes"]], 120)
        spy = None
        if profile and ctx.profile_dir is not None:
            spy = profiling.start(svc.procs.pid("worker0"), 10, ctx.profile_dir / f"{profile}.txt")
        pids = {"api": svc.api_pids(), "workers": [svc.procs.pid(f"worker{i}") for i in range(workers)],
                **svc.redis_pids(), "timers": [svc.procs.pid("timers")], **(extra_pids or {})}  # fmt: skip
        idle_rate = None
        if idle > 0:
            before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            time.sleep(idle)
            idle_rate = {k: (sum(cpu_seconds(p) for p in v) - before[k]) / idle * 1e6 for k, v in pids.items()}
        servers = svc.redis_clients()
        stats0 = {k: server_counts(c) for k, c in servers.items()}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        t_cpu0 = time.monotonic()
        result = load({**spec, "prefix": "x", "count": n})
        names = [f"x{i}" for i in result["ok_indexes"]]
        ended = wait_ended(svc.r, flow_id, names, timeout)
        cpu = {k: (sum(cpu_seconds(p) for p in v) - cpu0[k]) / max(1, ended.succeeded) * 1e6 for k, v in pids.items()}
        window = time.monotonic() - t_cpu0
        server_stats = {k: {m: (v - stats0[k][m]) / max(1, ended.succeeded) for m, v in server_counts(c).items()} for k, c in servers.items()}
        for c in servers.values():
            c.close()
        profiling.finish(spy)
        sample = names[: min(200, len(names))]
        pipe = svc.r.pipeline(transaction=False)
        for name in sample:
            pipe.hget(keys.execution(keys.execution_tag(flow_id, name)), "hseq")
        seqs = [int(v or 0) for v in pipe.execute()]
        events = sum(seqs) / max(1, len(seqs))
        shard_keys = [int(n.client().dbsize()) for n in svc.cluster.nodes] if svc.cluster is not None else []
    finally:
        svc.stop()
    return Batch(ended, result["rate"], events, {"codes": result["codes"], "first_error": result["first_error"], "shard_keys": shard_keys,
                                              "server_stats": server_stats}, cpu, idle_rate, window)  # fmt: skip


def server_counts(r: redis.Redis) -> dict[str, float]:
    """What a redis-server has done so far: commands (those inside scripts too), their µs, and the reads
    of client input (about one per round trip a client makes)."""
    stats: dict[str, Any] = r.info("commandstats")
    io: dict[str, Any] = r.info("stats")
    return {"calls": float(sum(v["calls"] for v in stats.values())), "usec": float(sum(v["usec"] for v in stats.values())),
            "reads": float(io.get("total_reads_processed", 0))}  # fmt: skip


def peer_batch(ctx: Ctx, name: str, definition: str, n: int, raw_input: str = "{}") -> Batch:
    """Start n executions on moto (executing) with the same client; wait (capped) for all."""
    moto = ctx.peer()
    moto.reset()
    moto.set_execution(True)
    sfn = moto.client()
    arn = peer.create_state_machine(sfn, name, definition)
    pid = moto.procs.pid("moto")
    rss0 = rss_bytes(pid)
    spec = {"host": "127.0.0.1", "port": moto.port, "kind": "sfn", "arn": arn, "concurrency": ctx.sizes.concurrency,
            "duration": ctx.sizes.peer_timeout, "prefix": "x", "count": n, "input": raw_input}  # fmt: skip
    result = load(spec)
    ended = peer.wait_ended(sfn, arn, result["ok"], ctx.sizes.peer_timeout)
    rss1 = rss_bytes(pid)
    # Resident-set growth is only meaningful over a few hundred executions; the allocator may also give memory back.
    grown = (rss1 - rss0) / result["ok"] if result["ok"] >= 200 and rss1 > rss0 else None
    return Batch(ended, result["rate"], extra={"rss_per_execution": grown, "sent": result["sent"]})


def _status_note(ended: Ended) -> str:
    parts = [f"{k} {v}" for k, v in sorted(ended.by_status.items()) if k != "Succeeded"]
    capped = "" if ended.complete else f"capped after {ended.waited:.0f} s; "
    return capped + ("; ".join(parts) if parts else "")


def pass10(ctx: Ctx) -> None:
    """Scenario 2: completed 10-state Pass executions per second, history persisted, 2 workers (as `openfnf dev`)."""
    s = ctx.sizes
    o = ctx.best("10-state Pass, OpenFnF", lambda: ours_batch(ctx, "pass10", fdl_pass_chain(10), s.pass10, workers=2, profile="worker-pass10"),
                 lambda b: b.ended.rate())  # fmt: skip
    p = ctx.best("10-state Pass, peer", lambda: peer_batch(ctx, "pass10", asl_pass_chain(10), s.pass10_peer), lambda b: b.ended.rate())
    rep = ctx.report
    bare = ctx.facts.get("celery2")
    row = rep.add(Row("2 10-state Pass", f"completed/s, N={o.ended.total} (peer N={p.ended.total}), 2 workers", "/s",
                      o.ended.rate(), p.ended.rate(), bare, "no-op Celery task/s, 2 workers",
                      target=">= 1,000/s; >= 15x peer"))  # fmt: skip
    parts = {">= 1,000/s": o.ended.rate() >= 1000, ">= 15x peer": p.ended.rate() > 0 and o.ended.rate() >= 15 * p.ended.rate()}
    row.judge(parts)
    rep.add(Row("2 10-state Pass", "transitions/s", "/s", o.ended.rate() * 10, p.ended.rate() * 10, target=">= 10,000/s",
                note=f"{o.history_events:.0f} history events each, persisted"))  # fmt: skip
    rep.rows[-1].met = o.ended.rate() * 10 >= 10_000
    rep.add(Row("2 10-state Pass", "start-to-end p50 under this load", "ms", o.ended.pct_ms(50), p.ended.pct_ms(50), higher=False))
    rep.add(Row("2 10-state Pass", "StartExecution accepted/s while workers run", "/s", o.start_rate, p.start_rate))
    if o.cpu_us:
        c = o.cpu_us
        rep.add(Row("2 10-state Pass", "CPU per completed execution, all processes", "µs", sum(c.values()), higher=False,
                    note=f"front door {c['api']:.0f}, workers {c['workers']:.0f}, redis-server {c['redis']:.0f}, timers {c['timers']:.0f} µs"))  # fmt: skip
    for who, b in (("OpenFnF", o), ("peer", p)):
        note = _status_note(b.ended)
        if note:
            rep.note(f"Scenario 2, {who}: {note}")
    ctx.facts["pass10"] = {"ours": o, "peer": p}
    if ctx.broker:
        _pass10_on_broker(ctx, o)


def _pass10_on_broker(ctx: Ctx, on_redis: Batch) -> None:
    """Scenario 2 again with `--broker` (RabbitMQ) as the Celery broker, the state on Redis: completed/s
    beside the Redis broker's figure of the same run (in the "bare" column: the row's reference)."""
    assert ctx.broker is not None
    env = {"OPENFNF_BROKER_URL": ctx.broker}
    rabbit_pid = ctx.facts.get("rabbitmq_pid")  # the node the bench started (--broker rabbitmq): its CPU is counted
    extra = {"rabbitmq": [rabbit_pid]} if rabbit_pid else None
    a = ctx.best("10-state Pass, OpenFnF on RabbitMQ", lambda: ours_batch(ctx, "pass10-amqp", fdl_pass_chain(10), ctx.sizes.pass10,
                 workers=2, env=env, extra_pids=extra), lambda b: b.ended.rate())  # fmt: skip
    rep = ctx.report
    rep.add(Row("2 10-state Pass, RabbitMQ broker", f"completed/s, N={a.ended.total}, 2 workers", "/s", a.ended.rate(), None,
                on_redis.ended.rate(), "the same on the Redis broker (this run)"))  # fmt: skip
    rep.add(Row("2 10-state Pass, RabbitMQ broker", "start-to-end p50 under this load", "ms", a.ended.pct_ms(50), None,
                on_redis.ended.pct_ms(50), "on the Redis broker", higher=False))  # fmt: skip
    if a.cpu_us:
        c = a.cpu_us
        broker = f"RabbitMQ {c['rabbitmq']:.0f} µs" if "rabbitmq" in c else "RabbitMQ's own CPU not counted (a server the bench did not start)"
        rep.add(Row("2 10-state Pass, RabbitMQ broker", "CPU per completed execution, all processes", "µs", sum(c.values()),
                    higher=False, note=f"front door {c['api']:.0f}, workers {c['workers']:.0f}, redis-server {c['redis']:.0f}, "
                    f"timers {c['timers']:.0f} µs; {broker}"))  # fmt: skip
    note = _status_note(a.ended)
    if note:
        rep.note(f"Scenario 2 on RabbitMQ: {note}")


# The worker-scaling rows measure the workers: their Pass flows go to them, not run at their start (common/purestart.py).
WORKERS_RUN_IT = {"OPENFNF_PURE_AT_START_EVENTS": "0"}


def scaling(ctx: Ctx) -> None:
    """Completed 10-state executions per second with 1, 2 and 4 worker processes (issue 10 asks for it)."""
    s = ctx.sizes
    for w in s.workers:
        o = ctx.best(f"{w} worker(s)", partial(ours_batch, ctx, "scaling", fdl_pass_chain(10), s.scaling, workers=w, env=WORKERS_RUN_IT), lambda b: b.ended.rate())
        bare = ctx.facts.get(f"celery{w}")
        ctx.report.add(Row("2 worker scaling", f"completed/s, {w} worker process{'es' if w > 1 else ''} (solo pool), N={o.ended.total}",
                           "/s", o.ended.rate(), None, bare, f"no-op Celery task/s, {w} worker{'s' if w > 1 else ''}",
                           note=_status_note(o.ended)))  # fmt: skip


def fanout(ctx: Ctx) -> None:
    """Scenario 4: Map over 100 items, each a Python function call (ours) / a Pass (moto cannot call our functions)."""
    s = ctx.sizes
    items = json.dumps({"items": list(range(100))})
    o = ours_batch(ctx, "fanout", fdl_map_calls(), s.fanout, workers=2, raw_input=items, profile="worker-fanout")
    p = peer_batch(ctx, "fanout", asl_map_pass(), s.fanout, raw_input=items)
    rep = ctx.report
    rep.add(Row("4 Map x100", f"executions completed/s, M={o.ended.total} started at once, 2 workers", "/s", o.ended.rate(), p.ended.rate(),
                note=_status_note(o.ended)))  # fmt: skip
    rep.add(Row("4 Map x100", "items completed/s (function calls / peer: Pass)", "/s", o.ended.rate() * 100, p.ended.rate() * 100))
    rep.add(Row("4 Map x100", "start-to-end p50 of one execution", "ms", o.ended.pct_ms(50), p.ended.pct_ms(50), higher=False))
    if _status_note(p.ended):
        rep.note(f"Scenario 4, peer: {_status_note(p.ended)}")
    ctx.facts["fanout"] = {"ours": o, "peer": p}
