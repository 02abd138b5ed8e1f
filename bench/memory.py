"""Scenario 5: Redis memory per finished and per waiting execution (10 states, small input, history kept).

`INFO memory` used_memory before and after N executions, each measured when everything transient
is gone: the drive queue and Celery's unacked set are empty, the safety net's wake-ups have been
released (they last OPENFNF_WAKE_AFTER_MS), and the SignatureNonce keys of the requests are
deleted (they belong to requests, not executions, and expire after 15 minutes; their cost per
request is reported apart). A waiting execution is parked on a one-day Wait after 5 Pass states.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from bench.context import Ctx
from bench.flows import fdl_parked, fdl_pass_chain
from bench.measure import load, wait_ended, wait_until
from bench.services import KEY_ID, SECRET, OpenFnF
from bench.table import Row
from common import keys
from common.settings import Settings

N = Settings().partitions  # the partitioned zsets (keys.wake, keys.timers) the services use

SMALL_INPUT = '{"orderId":"A-1001","amount":42}'


def _used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def _drop_nonces(r: redis.Redis) -> int:
    dropped = 0
    batch: list[bytes] = []
    for key in r.scan_iter(match=keys.signature_nonce("*", "*"), count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            dropped += int(r.delete(*batch))
            batch = []
    if batch:
        dropped += int(r.delete(*batch))
    return dropped


def _settle(r: redis.Redis, timeout: float = 90) -> tuple[int, int, int]:
    """Wait for the transient keys to go; (used_memory, nonces dropped, used_memory before dropping them)."""
    wait_until(lambda: r.llen("openfnf.drives") == 0 and r.hlen("unacked") == 0 and _zcard(r, keys.wake) == 0, timeout, 0.5)
    time.sleep(0.5)
    before = _used(r)
    dropped = _drop_nonces(r)
    return _used(r), dropped, before


def _zcard(r: redis.Redis, key: Callable[[int, int], str]) -> int:
    """Members over every partition of a partitioned zset (keys.wake, keys.timers)."""
    return sum(int(r.zcard(key(p, N))) for p in range(N))


def _key_bytes(r: redis.Redis, key: str) -> int:
    return int(r.memory_usage(key, samples=0) or 0)


def run(ctx: Ctx) -> None:
    """Scenario 5's rows."""
    n = ctx.sizes.memory
    svc = OpenFnF(ctx.sub("memory"), workers=2).start()
    out: dict[str, Any] = {}
    try:
        r = svc.r
        assert r is not None
        fin_id = svc.create_flow("pass10", fdl_pass_chain(10))
        wait_id = svc.create_flow("parked", fdl_parked(5, 4, 86400))
        base = {"host": "127.0.0.1", "port": svc.port, "kind": "fnf", "key_id": KEY_ID, "secret": SECRET, "input": SMALL_INPUT,
                "concurrency": ctx.sizes.concurrency, "duration": 900, "keep_indexes": True}  # fmt: skip
        warm = load({**base, "flow": "pass10", "prefix": "w", "count": 100})
        wait_ended(r, fin_id, [f"w{i}" for i in warm["ok_indexes"]], 60)
        load({**base, "flow": "parked", "prefix": "w", "count": 100})
        wait_until(lambda: _zcard(r, keys.timers) >= 100, 60)

        m0, _, _ = _settle(r)
        done = load({**base, "flow": "pass10", "prefix": "x", "count": n})
        ended = wait_ended(r, fin_id, [f"x{i}" for i in done["ok_indexes"]], 900)
        m1, nonces, m1_with = _settle(r)
        out["finished"] = (m1 - m0) / max(1, ended.succeeded)
        out["nonce"] = (m1_with - m1) / max(1, nonces)
        tag = keys.execution_tag(fin_id, "x0")
        out["fin_record"] = _key_bytes(r, keys.execution(tag))
        out["fin_history"] = _key_bytes(r, keys.history(tag))
        out["fin_index"] = _key_bytes(r, keys.executions_index(fin_id)) / max(1, r.zcard(keys.executions_index(fin_id)))
        out["fin_complete"] = ended.complete and ended.succeeded == n

        timers0 = _zcard(r, keys.timers)
        parked = load({**base, "flow": "parked", "prefix": "x", "count": n})
        wait_until(lambda: _zcard(r, keys.timers) >= timers0 + parked["ok"], 900, 0.5)
        m3, _, _ = _settle(r)
        out["waiting"] = (m3 - m1) / max(1, parked["ok"])
        out["waiting_parked"] = _zcard(r, keys.timers) - timers0
        tag = keys.execution_tag(wait_id, "x0")
        out["wait_record"] = _key_bytes(r, keys.execution(tag))
        out["wait_history"] = _key_bytes(r, keys.history(tag))
        out["timer"] = sum(_key_bytes(r, keys.timers(p, N)) for p in range(N)) / max(1, _zcard(r, keys.timers))
    finally:
        svc.stop()
    rep = ctx.report
    pass10 = ctx.facts.get("pass10")
    peer_rss = pass10["peer"].extra["rss_per_execution"] if pass10 and pass10["peer"].extra else None
    row = rep.add(Row("5 memory", f"Redis bytes per finished 10-state execution, N={n}", "B", out["finished"], peer_rss, higher=False,
                      target="< 4 KiB", note=f"record {out['fin_record']} B, history {out['fin_history']} B, index ~{out['fin_index']:.0f} B"))  # fmt: skip
    row.met = out["finished"] < 4096 and bool(out["fin_complete"])
    row = rep.add(Row("5 memory", f"Redis bytes per waiting execution, N={out['waiting_parked']} parked", "B", out["waiting"], higher=False,
                      target="< 2 KiB", note=f"record {out['wait_record']} B, history {out['wait_history']} B, timer ~{out['timer']:.0f} B"))  # fmt: skip
    row.met = out["waiting"] < 2048
    rep.note(
        f"Memory: a SignatureNonce key costs {out['nonce']:.0f} B of Redis per signed request for 15 minutes (not counted above). "
        "The peer's figure is moto's resident-set growth per finished execution in scenario 2 (a Python process, not Redis)."
    )
