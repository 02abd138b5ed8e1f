"""How exactly the shared GCRA limiter admits B + R x seconds, across two front doors.

Starts its own redis-server, two `openfnf api` front doors, a worker and the timers; for each
(rate R, burst B) it sets a StartExecution rule, offers 4R per second for the duration through
both front doors (open loop, `openfnf loadtest`'s generator, requests alternating between them),
and prints accepted against B + R x (seconds between the first and the last request sent), and
against the nominal B + R x duration. It also counts the executions created (must equal accepted).

    python bench/throttle_accuracy.py                    # R = 20 and 50, B = 10, 10 s
    python bench/throttle_accuracy.py --case 100:100 --duration 30

A row is only meaningful if the generator kept up (achieved close to offered) and the machine did
not stall: on 2 shared cores running everything, about 200 requests per second is the most it
offers on time. The limiter counts on the Redis clock; a stall longer than B/R seconds lets the
bucket overflow (fewer admitted), and requests queued in a front door stretch the server-side span
beyond the client-side one (more admitted than B + R x span).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import keys  # noqa: E402
from common.throttle_rules import Rule, Scope, encode  # noqa: E402
from openfnf.loadtest import LoadConfig, call, run_load  # noqa: E402
from openfnf.redisserver import free_port, start_redis, wait_for_port  # noqa: E402

KEY_ID, SECRET, ACCOUNT = "LTAIbenchkey00001", "bench-secret-0123456789", "1234567890"
FLOW = "Type: StateMachine\nSpecVersion: v1\nName: {name}\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "openfnf", *args], env=env, stdout=out, stderr=out, cwd=ROOT)


async def api(endpoint: str, action: str, params: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        status, doc, _ = await call(session, endpoint, KEY_ID, SECRET, action, params)
        return status, str(doc.get("Code", ""))


def activate(rdb: redis.Redis, endpoints: list[str], rule: Rule) -> None:
    """Store the rule with a probe rule in one HSET; return once every front door throttles the probe."""
    probe = f"probe{time.monotonic_ns()}"
    rules = [rule, Rule(action="DescribeFlow", rate=0.001, burst=1, scope=Scope.FLOW, target=probe)]
    rdb.hset(keys.THROTTLE_RULES, mapping={r.id: encode(r) for r in rules})
    for endpoint in endpoints:
        deadline = time.monotonic() + 10
        while asyncio.run(api(endpoint, "DescribeFlow", {"Name": probe}))[0] != 429:
            if time.monotonic() > deadline:
                raise SystemExit("the rule was not picked up within 10 s")
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="RATE:BURST (repeatable; default 20:10 and 50:10)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per case")
    parser.add_argument("--factor", type=float, default=4.0, help="offered load as a multiple of the rate")
    args = parser.parse_args()
    cases = [tuple(float(x) for x in c.split(":")) for c in (args.case or ["20:10", "50:10"])]

    work = Path(tempfile.mkdtemp(prefix="openfnf-bench-"))
    server = start_redis(work / "redis", aof=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
    env.update(OPENFNF_REDIS_URL=server.url, OPENFNF_ACCESS_KEY_ID=KEY_ID, OPENFNF_ACCESS_KEY_SECRET=SECRET,
               OPENFNF_ACCOUNT_ID=ACCOUNT, OPENFNF_LOG_LEVEL="WARNING")  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            procs.append(spawn(["api", "--port", str(port)], env, work / f"api{i}.log"))
            wait_for_port(port, procs[-1])
        procs.append(spawn(["worker", "--hostname", "bench@%h"], env, work / "worker.log"))
        procs.append(spawn(["timers"], env, work / "timers.log"))
        endpoints = [f"http://127.0.0.1:{p}" for p in ports]
        rdb = redis.Redis.from_url(server.url)
        rows = []
        for n, (rate, burst) in enumerate(cases):
            flow = f"bench{n}"
            definition = FLOW.format(name=flow)
            status, code = asyncio.run(api(endpoints[0], "CreateFlow", {"Name": flow, "Definition": definition, "Description": "bench", "Type": "FDL"}))
            if status != 200:
                raise SystemExit(f"CreateFlow answered {status} {code}")
            activate(rdb, endpoints, Rule(action="StartExecution", rate=rate, burst=int(burst), scope=Scope.FLOW, target=flow))
            cfg = LoadConfig(endpoints=endpoints, key_id=KEY_ID, secret=SECRET, action="StartExecution",
                             rate=args.factor * rate, duration=args.duration, flow=flow, concurrency=256)  # fmt: skip
            result = asyncio.run(run_load(cfg))
            accepted = sum(1 for s in result.samples if 200 <= s.status < 300)
            other = sum(1 for s in result.samples if not (200 <= s.status < 300 or s.status == 429))
            raw_id = rdb.hget(keys.flow(ACCOUNT, flow), "Id")
            flow_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            created = rdb.zcard(keys.executions_index(flow_id))
            expected = burst + rate * result.send_span
            nominal = burst + rate * args.duration
            rows.append((rate, burst, cfg.rate, result.send_span, len(result.samples), accepted, other, created, expected, nominal))
        print(f"\nGCRA accuracy: StartExecution through 2 front doors, offered {args.factor:g}R for {args.duration:g} s (open loop)")
        head = f"{'R/s':>6} {'B':>5} {'offered/s':>9} {'achieved/s':>10} {'span s':>7} {'sent':>6} {'accepted':>8} {'other':>5} {'created':>7} {'B+R*span':>9} {'error':>7} {'B+R*dur':>8} {'vs nominal':>10}"
        print(head)
        print("-" * len(head))
        for rate, burst, offered, span, sent, accepted, other, created, expected, nominal in rows:
            print(
                f"{rate:>6g} {burst:>5g} {offered:>9g} {(sent - 1) / span:>10.1f} {span:>7.3f} {sent:>6} {accepted:>8} {other:>5} {created:>7} "
                f"{expected:>9.1f} {100 * (accepted - expected) / expected:>+6.2f}% {nominal:>8.0f} {100 * (accepted - nominal) / nominal:>+9.2f}%"
            )
        print("error: accepted vs B + R x (first to last request sent); vs nominal: against B + R x duration")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


if __name__ == "__main__":
    main()
