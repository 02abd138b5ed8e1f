"""The console's speed: an execution page with ~5,000 history events, and a flow with 100,000 executions.

    python -m bench.console [--executions 100000] [--items 830]

Starts its own redis-server, writes the data straight into it (a Map of `--items` Pass iterations,
run by the pure interpreter, gives the history; executions are index entries and records), and
serves the console in process. Prints server-side times (the handler inside aiohttp, measured by a
middleware) and how many index entries each page read. Not a test: nothing asserts a time.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
import yaml  # noqa: E402
from aiohttp import CookieJar, web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from common import browse, keys  # noqa: E402
from common.fdl import parse_definition  # noqa: E402
from common.interpreter import advance  # noqa: E402
from common.interpreter.model import Limits  # noqa: E402
from common.records import definition_id, encode_history_chunk  # noqa: E402
from common.settings import Settings  # noqa: E402
from common.store import ExecutionFilter, Store  # noqa: E402
from console.app import attach  # noqa: E402
from openfnf.redisserver import start_redis  # noqa: E402

ACCOUNT, KEY_ID, SECRET = "1234567890", "BENCHCONSOLE", "bench-console-secret-01"
MAP_FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    Processor:
      StartAt: Touch
      States:
        - Type: Pass
          Name: Touch
          End: true
    End: true
"""
T0 = int(time.time() * 1000) - 3_600_000  # an hour ago: the flows list counts the last 24 h


async def _flow(store: Store, name: str, flow_id: str) -> dict[str, str]:
    def_id = definition_id(MAP_FLOW)
    fields = {"Id": flow_id, "Name": name, "Definition": MAP_FLOW, "DefId": def_id, "Type": "FDL", "ExecutionMode": "Standard",
              "CreatedTime": str(T0), "LastModifiedTime": str(T0)}  # fmt: skip
    await store.create_flow(ACCOUNT, name, def_id, MAP_FLOW, fields)
    return fields


async def _big_history(store: Store, flow: dict[str, str], items: int) -> int:
    """One finished execution whose history the interpreter wrote: a Map over `items` Pass iterations."""
    decision = advance(
        parse_definition(MAP_FLOW), None, [{"t": "Started", "input": {"items": list(range(items))}, "name": "big", "flow": flow["Name"]}],
        T0, limits=Limits(max_history_events=100_000),
    )  # fmt: skip
    tag = keys.execution_tag(flow["Id"], "big")
    pipe = store.redis.pipeline(transaction=False)
    pipe.hset(keys.execution(tag), mapping={"acct": ACCOUNT, "flow": flow["Name"], "fid": flow["Id"], "name": "big", "status": str(decision.status),
              "input": "{}", "output": "{}", "defid": flow["DefId"], "qual": "", "started": str(T0), "stopped": str(T0 + 1000)})  # fmt: skip
    for i in range(0, len(decision.history), 64):  # stored as drives store it: one chunk per drive
        pipe.rpush(keys.history(tag), encode_history_chunk(decision.history[i : i + 64]))
    pipe.zadd(keys.executions_index(flow["Id"]), {"big": T0})
    await pipe.execute()
    return len(decision.history)


async def _many(store: Store, flow: dict[str, str], count: int) -> None:
    """`count` executions of a flow: index entries and records (a tenth still running)."""
    for start in range(0, count, 5000):
        pipe = store.redis.pipeline(transaction=False)
        for i in range(start, min(count, start + 5000)):
            name = f"x{i:07d}"
            status = "Running" if i % 10 == 0 else ("Failed" if i % 7 == 0 else "Succeeded")
            pipe.hset(keys.execution(keys.execution_tag(flow["Id"], name)), mapping={
                "acct": ACCOUNT, "flow": flow["Name"], "fid": flow["Id"], "name": name, "status": status, "input": "{}",
                "output": "", "defid": flow["DefId"], "qual": "", "started": str(T0 + i), "stopped": "" if status == "Running" else str(T0 + i + 5)})  # fmt: skip
            pipe.zadd(keys.executions_index(flow["Id"]), {name: T0 + i})
        await pipe.execute()


class Counted:
    """Counts index entries read (ZREVRANGE answers) by wrapping the client's zrevrange."""

    def __init__(self, client: Any) -> None:
        self.read = 0
        original = client.zrevrange

        async def zrevrange(*args: Any, **kwargs: Any) -> Any:
            answer = await original(*args, **kwargs)
            self.read += len(answer)
            return answer

        client.zrevrange = zrevrange


def _server_time(times: list[float]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def timed(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        t = time.perf_counter()
        response = await handler(request)
        times.append((time.perf_counter() - t) * 1000)
        return response

    return timed


async def _get(client: TestClient[web.Request, web.Application], times: list[float], path: str, repeat: int) -> tuple[float, float, int]:
    times.clear()
    size = 0
    for _ in range(repeat):
        resp = await client.get(path)
        body = await resp.read()
        assert resp.status == 200, (path, resp.status, body[:300])
        size = len(body)
    return statistics.median(times), max(times), size


async def main(executions: int, items: int, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="openfnf-bench-console-"))
    server = start_redis(work, aof=False)
    try:
        creds = work / "credentials.yaml"
        creds.write_text(yaml.safe_dump({"accounts": [{"id": ACCOUNT, "access_keys": [{"id": KEY_ID, "secret": SECRET}]}]}), encoding="utf-8")
        settings = Settings(_env_file=None, redis_url=server.url, credentials=creds)  # type: ignore[call-arg]
        client_r = aioredis.from_url(server.url)
        store = Store(client_r, settings)
        history_flow = await _flow(store, "history", "flow-history")
        events = await _big_history(store, history_flow, items)
        many_flow = await _flow(store, "many", "flow-many")
        t = time.perf_counter()
        await _many(store, many_flow, executions)
        print(f"wrote {executions:,} executions in {time.perf_counter() - t:.1f} s; one execution with {events:,} history events")

        counted = Counted(store.redis)
        page_times: list[float] = []
        t = time.perf_counter()
        first = await browse.executions_newest_first(store, many_flow["Id"], "", 25, ExecutionFilter())
        page_times.append((time.perf_counter() - t) * 1000)
        first_read = counted.read
        deep_cursor = f"x{executions // 2:07d}"
        counted.read = 0
        t = time.perf_counter()
        await browse.executions_newest_first(store, many_flow["Id"], deep_cursor, 25, ExecutionFilter())
        page_times.append((time.perf_counter() - t) * 1000)
        deep_read = counted.read
        counted.read = 0
        t = time.perf_counter()
        sparse = await browse.executions_newest_first(store, many_flow["Id"], "", 25, ExecutionFilter(status="Failed", prefix="x00001"))
        page_times.append((time.perf_counter() - t) * 1000)
        sparse_read = counted.read

        times: list[float] = []
        app = web.Application(middlewares=[_server_time(times)])
        attach(app, settings)
        async with TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True)) as client:
            page = await client.get("/console/signin")
            csrf = (await page.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
            await client.post("/console/signin", data={"csrf": csrf, "access_key_id": KEY_ID, "access_key_secret": SECRET})
            execution = await _get(client, times, "/console/flows/history/executions/big", repeat)
            execution_filtered = await _get(client, times, "/console/flows/history/executions/big?type=StepEntered&page=5", repeat)
            flow_page = await _get(client, times, "/console/flows/many", repeat)
            flow_deep = await _get(client, times, f"/console/flows/many?cursor={deep_cursor}", repeat)
            flows = await _get(client, times, "/console/flows", repeat)
        await client_r.aclose()
        rows = [
            (f"execution page, {events} history events", execution),
            ("  same, history filtered by type, page 5", execution_filtered),
            (f"flow page, newest 25 of {executions:,} executions", flow_page),
            (f"flow page, 25 from the middle of {executions:,}", flow_deep),
            ("flows list (counts of the last 24 h)", flows),
        ]
        print()
        print(f"| page (server time, {repeat} requests) | median ms | max ms | bytes |")
        print("|---|---|---|---|")
        for label, (median, worst, size) in rows:
            print(f"| {label} | {median:.1f} | {worst:.1f} | {size:,} |")
        print()
        print(f"| executions page query ({executions:,} in the flow) | ms | index entries read |")
        print("|---|---|---|")
        print(f"| newest 25 | {page_times[0]:.1f} | {first_read:,} |")
        print(f"| 25 from the middle (cursor) | {page_times[1]:.1f} | {deep_read:,} |")
        print(f"| sparse filter (status + prefix, {len(sparse.rows)} found) | {page_times[2]:.1f} | {sparse_read:,} (cap {browse.SCAN_LIMIT:,}) |")
        assert len(first.rows) == 25
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=830, help="Map iterations of the big history (6 events each)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.items, args.repeat))
