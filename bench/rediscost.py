"""What each piece of an execution's Redis work costs redis-server (issue 17): a replay, and what-ifs.

    python -m bench.rediscost [--n 16000] [--batch 32] [--repeat 3] [--only base,no-aof,...]
    python -m bench.rediscost --callgrind     # instructions per execution under valgrind: exact, repeatable

bench.rediswork measures the real service; this replays, on a private redis-server started as
`openfnf dev` starts it (openfnf/redisserver.py: the bundled binary, AOF everysec), the Redis
commands one completed execution of the 10-state Pass flow sends when state and broker share the
server, batched as the front door and the workers batch them (`--batch` executions per round trip),
with the service's own scripts (claim.lua, commit.lua), keys and acquire (common/driverscripts.py):

- front door: the SignatureNonce `SET NX PX`, the flow's `HMGET`, the start's wake-up `ZADD`, the
  execution index `ZADD NX`, claim.lua, the running count's `INCRBY`, the drive message's `LPUSH`;
- broker: `BRPOP` and kombu's unacked `MULTI ZADD HSET EXEC` per message, its ack after the commit;
- driver: the acquire (`SET NX PX`, `HMGET`, `LRANGE`) and the wake-up's `ZREM`, then commit.lua
  with a 700-byte history chunk and the running count's `DECRBY`.

Each variant leaves one piece out and prints redis-server CPU per execution (INFO cpu, user +
system; the best of `--repeat` runs, interleaved), the CPU of each phase, and the AOF bytes per
execution, so the difference to `base` is what that piece costs. The what-ifs are measurements,
not designs: `no-wake` and `no-lease` drop a safeguard the service needs.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench import table
from bench.callgrind import available as callgrind_missing
from bench.callgrind import totals as callgrind_totals
from bench.callgrind import wrapper as callgrind_wrapper
from common import keys, runcount
from common.driverscripts import queue_acquire
from common.records import new_execution_fields
from common.scripts import source
from openfnf.redisserver import start_redis

ACCOUNT, FLOW, FLOW_ID, DEF_ID = "1234567890", "f", "3f2a9c1e-0000-4000-8000-000000000001", "d" * 32
PARTITIONS, SHARDS = 16, 8
VARIANTS = {
    "base": "every piece, as the service runs",
    "acquire.lua": "the acquire as a script, as before issue 17's second step (9fdeaa2)",
    "no-aof": "the server without AOF (what persistence costs)",
    "no-wake": "without the start's own wake-up (ZADD at the claim, ZREM after the first drive)",
    "no-count": "without the running count (INCRBY at the claim, DECRBY at the end)",
    "no-lease": "without the lease (no SET NX PX at the acquire, commit.lua without its fence check)",
    "no-inbox": "Started not queued in the inbox (claim.lua without its RPUSH, nothing to read or delete)",
    "at-claim": "a flow of pure states run to its end by the front door, its claim writing the ended record and history "
                "(no wake-up, count, broker, lease, acquire or commit): common/purestart.py since issue 17's last step",
}
CLAIM_WITHOUT_INBOX = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return {1}
"""
# The acquire before it became plain commands (common/lua/acquire.lua at 9fdeaa2), for the comparison.
ACQUIRE_LUA = """
local rec = redis.call('HMGET', KEYS[1], 'status', 'state', 'defid', 'flow', 'name', 'acct', 'cb', 'hseq', 'tp', 'dq')
if not rec[1] then return {-1} end
if not redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[1]) then return {0} end
if rec[10] then redis.call('HDEL', KEYS[1], 'dq') end
rec[10] = nil
return {ARGV[2], rec, redis.call('LRANGE', KEYS[2], 0, -1)}
"""
FENCE_CHECK = """if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'dq')
  return -1
end
"""


def commit_without_fence() -> str:
    """commit.lua without its fence check (the `no-lease` what-if; its DEL of the absent lease stays)."""
    text = source("commit")
    if FENCE_CHECK not in text:
        raise RuntimeError("commit.lua's fence check changed: update bench/rediscost.py")
    return text.replace(FENCE_CHECK, "")


STATE = json.dumps({"v": 2, "status": "Succeeded", "seq": 42, "ctx": {"name": "x", "flow": FLOW, "input": {}}, "nf": 2,
                    "frames": {}, "waits": {}, "output": {}}, separators=(",", ":"))  # fmt: skip
MESSAGE = json.dumps({"body": "x" * 400, "content-type": "application/json", "headers": {"task": "openfnf.drive"}})


class Phases:
    """redis-server CPU seconds spent in each phase of the replay (INFO cpu read between phases)."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.seconds: dict[str, float] = {}
        self.last = self.cpu()

    def cpu(self) -> float:
        info: dict[str, Any] = self.r.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def mark(self, phase: str) -> None:
        now = self.cpu()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now


def replay(variant: str, n: int, batch: int, callgrind: bool = False) -> dict[str, Any]:
    """Replay n executions in batches on a fresh server; CPU per execution (us), per phase, AOF bytes, and
    with `callgrind` the server's user-space instructions over its whole life (under valgrind)."""
    with tempfile.TemporaryDirectory(prefix="rediscost-") as tmp:
        binary, out = callgrind_wrapper(Path(tmp)) if callgrind else (None, Path(tmp) / "none")
        server = start_redis(Path(tmp) / "data", aof=variant != "no-aof", binary=binary)
        try:
            r = redis.Redis.from_url(server.url)
            sha = {name: r.script_load(source(name)) for name in ("claim", "commit")}
            claim_sha = r.script_load(CLAIM_WITHOUT_INBOX) if variant == "no-inbox" else sha["claim"]
            sha["acquire.lua"] = r.script_load(ACQUIRE_LUA)
            if variant == "no-lease":
                sha["commit"] = r.script_load(commit_without_fence())
            r.hset(keys.flow(ACCOUNT, FLOW), mapping={"Id": FLOW_ID, "Name": FLOW, "DefId": DEF_ID, "ExecutionMode": "Standard"})
            chunk = os.urandom(700)  # a compressed history chunk of 42 events is about this long
            phases = Phases(r)
            start_cpu = phases.last
            for first in range(0, n, batch):
                tags = [keys.execution_tag(FLOW_ID, f"x{first + i}-{uuid.uuid4().hex[:8]}") for i in range(batch)]
                _front_door(r, variant, claim_sha, tags, chunk)
                phases.mark("front door")
                if variant == "at-claim":
                    continue
                r.brpop([b"openfnf.drives"], 1)
                _kombu(r, "unacked")
                phases.mark("broker")
                _acquire(r, variant, tags, sha["acquire.lua"])
                phases.mark("acquire")
                _commit(r, variant, sha["commit"], tags, chunk)
                phases.mark("commit")
                _kombu(r, "ack")
                phases.mark("broker")
            total = phases.cpu() - start_cpu
            aof = int(r.info("persistence").get("aof_current_size", 0))
        finally:
            server.stop(timeout=120)
        instructions = callgrind_totals(out)[-1] if callgrind else 0
        return {"variant": variant, "cpu_us": total / max(1, n) * 1e6, "phases": {k: v / max(1, n) * 1e6 for k, v in phases.seconds.items()},
                "aof_bytes": aof / max(1, n), "instructions": instructions}  # fmt: skip


def _pipeline(r: redis.Redis, build: Callable[[Any], None], transaction: bool = False) -> None:
    pipe = r.pipeline(transaction=transaction)
    build(pipe)
    pipe.execute()


def _front_door(r: redis.Redis, variant: str, claim_sha: str, tags: list[str], chunk: bytes) -> None:
    def build(pipe: Any) -> None:
        for tag in tags:
            name = keys.split_tag(tag)[1]
            pipe.set(keys.signature_nonce("LTAIbenchkey000001", secrets.token_hex(8), ACCOUNT), 1, nx=True, px=900_000)
            pipe.hmget(keys.flow(ACCOUNT, FLOW), "Id", "Name", "DefId", "ExecutionMode", "Environment")
            if variant not in ("no-wake", "at-claim"):
                pending = keys.pending_start(ACCOUNT, FLOW, name)
                pipe.zadd(keys.wake_for(pending, PARTITIONS), {pending: int(time.time() * 1000) + 5000})
            pipe.zadd(keys.executions_index(FLOW_ID), {name: int(time.time() * 1000)}, nx=True)
            fields = new_execution_fields(account=ACCOUNT, flow=FLOW, raw_input="{}", def_id=DEF_ID, qualifier="", callback="",
                                          started=int(time.time() * 1000))  # fmt: skip
            if variant == "at-claim":  # the record as the commit leaves it, and the history chunk, at once
                fields = [*fields, "state", STATE, "hseq", "42", "output", "{}", "stopped", str(int(time.time() * 1000))]
                fields[fields.index("status") + 1] = "Succeeded"
                pipe.evalsha(claim_sha, 2, keys.execution(tag), keys.history(tag), chunk, 7_776_000, *fields)  # claim.lua, given a retention
                continue
            started = json.dumps({"t": "Started", "input": {}, "name": name, "flow": FLOW})
            pipe.evalsha(claim_sha, 2, keys.execution(tag), keys.inbox(tag), started, 0, *fields)
            if variant != "no-count":
                pipe.incrby(runcount.key_for(ACCOUNT, tag, SHARDS), 1)
        if variant != "at-claim":
            pipe.lpush("openfnf.drives", MESSAGE)

    _pipeline(r, build)


def _kombu(r: redis.Redis, step: str) -> None:
    def build(pipe: Any) -> None:
        if step == "unacked":
            pipe.zadd("unacked_index", {"m": time.time()})
            pipe.hset("unacked", "m", MESSAGE)
        else:
            pipe.zrem("unacked_index", "m")
            pipe.hdel("unacked", "m")

    _pipeline(r, build, transaction=True)


def _acquire(r: redis.Redis, variant: str, tags: list[str], acquire_lua: str) -> None:
    def build(pipe: Any) -> None:
        for tag in tags:
            if variant == "acquire.lua":
                pipe.evalsha(acquire_lua, 4, *keys.execution_keys(tag), 10_000, "token")
            elif variant == "no-lease":
                pipe.hmget(keys.execution(tag), "status", "state", "defid", "flow", "name", "acct", "cb", "hseq", "tp")
                pipe.lrange(keys.inbox(tag), 0, -1)
            else:
                queue_acquire(pipe, tag, 10_000, "token")
        if variant != "no-wake":
            pending = [keys.pending_start(ACCOUNT, FLOW, keys.split_tag(t)[1]) for t in tags]
            for wake_key in dict.fromkeys(keys.wake_for(p, PARTITIONS) for p in pending):
                pipe.zrem(wake_key, *(p for p in pending if keys.wake_for(p, PARTITIONS) == wake_key))

    _pipeline(r, build)


def _commit(r: redis.Redis, variant: str, commit_sha: str, tags: list[str], chunk: bytes) -> None:
    def build(pipe: Any) -> None:
        for tag in tags:
            consumed = 0 if variant == "no-inbox" else 1
            pipe.evalsha(commit_sha, 4, *keys.execution_keys(tag), "token", consumed, STATE, chunk, 42,
                         7_776_000, keys.DONE_CHANNEL, tag, "status", "Succeeded", "stopped", str(int(time.time() * 1000)),
                         "output", "{}")  # fmt: skip
            if variant != "no-count":
                pipe.decrby(runcount.key_for(ACCOUNT, tag, SHARDS), 1)

    _pipeline(r, build)


def main(argv: list[str] | None = None) -> int:
    """Replay every variant and print a table: CPU (`--repeat` runs, interleaved, the best kept) or, with
    `--callgrind`, redis-server's user-space instructions per execution (one run each: they do not vary)."""
    parser = argparse.ArgumentParser(prog="python -m bench.rediscost", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=0, help="executions per run (default 16000; 2000 with --callgrind)")
    parser.add_argument("--batch", type=int, default=32, help="executions per round trip (default 32, OPENFNF_DRIVE_BATCH)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant, interleaved; the best is kept")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants: " + ", ".join(VARIANTS))
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under valgrind (deterministic, unlike CPU time on a shared machine)")
    args = parser.parse_args(argv)
    chosen = table.chosen(args.only, VARIANTS, parser, "variants")
    if args.callgrind:
        if missing := callgrind_missing():
            parser.error(missing)
        return _instructions(chosen, args.n or 2000, args.batch)
    n = args.n or 16_000
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    for _ in range(args.repeat):
        for variant in chosen:
            runs[variant].append(replay(variant, n, args.batch))
    base = min(r["cpu_us"] for r in runs["base"]) if "base" in runs else None
    print(f"redis-server CPU per execution, {n} executions in batches of {args.batch}, best of {args.repeat} "
          f"(load {os.getloadavg()[0]:.1f})\n")  # fmt: skip
    print("| variant | CPU us | vs base | front door | acquire | commit | broker | AOF B | all runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for variant, results in runs.items():
        best = min(results, key=lambda x: x["cpu_us"])
        ph = best["phases"]
        delta = f"{best['cpu_us'] - base:+.1f}" if base is not None and variant != "base" else ""
        every = ", ".join(f"{x['cpu_us']:.1f}" for x in results)
        print(f"| {variant}: {VARIANTS[variant]} | {best['cpu_us']:.1f} | {delta} | {ph.get('front door', 0):.1f} | "
              f"{ph.get('acquire', 0):.1f} | {ph.get('commit', 0):.1f} | {ph.get('broker', 0):.1f} | {best['aof_bytes']:.0f} | {every} |")  # fmt: skip
    return 0


def _instructions(chosen: list[str], n: int, batch: int) -> int:
    """The callgrind table: thousands of instructions per execution (a run of n less a run of none)."""
    per: dict[str, tuple[float, float]] = {}
    for variant in chosen:
        idle = replay(variant, 0, batch, callgrind=True)["instructions"]
        run = replay(variant, n, batch, callgrind=True)
        per[variant] = ((run["instructions"] - idle) / n / 1000, run["aof_bytes"])
    print(f"redis-server user-space instructions per execution (callgrind), {n} executions in batches of {batch}\n")
    print("| variant | k instructions | vs base | AOF B |")
    print("|---|---:|---:|---:|")
    base = per["base"][0] if "base" in per else None
    for variant, (k, aof) in per.items():
        delta = f"{(k - base) / base:+.1%}" if base and variant != "base" else ""
        print(f"| {variant}: {VARIANTS[variant]} | {k:.1f} | {delta} | {aof:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
