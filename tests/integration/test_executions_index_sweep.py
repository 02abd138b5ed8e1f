"""A flow's executions index (keys.executions_index) loses the names whose records expired, also when nobody
lists it: Store.sweep_index, run by the front door after one StartExecution in OPENFNF_INDEX_SWEEP_EVERY.
Before, only ListExecutions dropped them, so the index of a flow never listed grew by a name per execution
for ever."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from api.app import make_app
from common import keys
from common.settings import Settings
from common.store import Store
from tests.frontdoor import ACCOUNT_A, FORM_HEADERS, PASS_FLOW, signed_request
from tests.integration.test_front_door_protocol import make_settings

DAY_MS = 86_400_000


def _index(r: Any, flow_id: str, now: int) -> None:
    """Old names of expired executions, an old one still running, and a young one whose claim is on its way."""
    old = now - 91 * DAY_MS
    r.zadd(keys.executions_index(flow_id), {"gone-1": old, "gone-2": old + 1, "running": old + 2, "claiming": now})
    r.hset(keys.execution(keys.execution_tag(flow_id, "running")), mapping={"status": "Running", "flow": "f"})


def _names(r: Any, flow_id: str) -> set[str]:
    return {n.decode() for n in r.zrange(keys.executions_index(flow_id), 0, -1)}


async def test_a_sweep_drops_only_old_names_whose_record_is_gone(redis_server: str, r: Any) -> None:
    client = aioredis.from_url(redis_server)
    store = Store(client, Settings(_env_file=None))  # type: ignore[call-arg]
    now = int(time.time() * 1000)
    _index(r, "fid-sweep", now)
    assert await store.sweep_index("fid-sweep", now, 90 * DAY_MS, limit=1) == 1  # the oldest first, `limit` at most
    assert _names(r, "fid-sweep") == {"gone-2", "running", "claiming"}
    assert await store.sweep_index("fid-sweep", now, 90 * DAY_MS) == 1
    assert _names(r, "fid-sweep") == {"running", "claiming"}  # a long run and a claim on its way stay
    assert await store.sweep_index("fid-sweep", now, 90 * DAY_MS) == 0
    await client.aclose()


async def test_a_start_sweeps_its_flows_index_after_answering(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    settings = make_settings(redis_server, tmp_path).model_copy(update={"index_sweep_every": 1})  # every start
    client: TestClient = await aiohttp_client(make_app(settings))

    async def send(action: str, params: dict[str, str]) -> None:
        path, form = signed_request(action, params)
        resp = await client.post(path, data=form, headers=FORM_HEADERS)
        assert resp.status == 200, await resp.text()

    await send("CreateFlow", {"Name": "swept", "Definition": PASS_FLOW.format(name="swept"), "Type": "FDL"})
    flow_id = r.hget(keys.flow(ACCOUNT_A, "swept"), "Id").decode()
    _index(r, flow_id, int(time.time() * 1000))
    await send("StartExecution", {"FlowName": "swept", "ExecutionName": "new"})
    deadline = time.monotonic() + 10
    while {"gone-1", "gone-2"} & _names(r, flow_id):
        assert time.monotonic() < deadline, _names(r, flow_id)
        await asyncio.sleep(0.05)
    assert _names(r, flow_id) == {"running", "claiming", "new"}


async def test_a_sync_start_sweeps_its_flows_index_too(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    settings = make_settings(redis_server, tmp_path).model_copy(update={"index_sweep_every": 1})
    client: TestClient = await aiohttp_client(make_app(settings))
    path, form = signed_request("CreateFlow", {"Name": "swept_sync", "Definition": PASS_FLOW.format(name="swept_sync"),
                                               "Type": "FDL", "ExecutionMode": "Express"})  # fmt: skip
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    assert resp.status == 200, await resp.text()
    flow_id = r.hget(keys.flow(ACCOUNT_A, "swept_sync"), "Id").decode()
    _index(r, flow_id, int(time.time() * 1000))
    path, form = signed_request("StartSyncExecution", {"FlowName": "swept_sync"})
    waiting = asyncio.create_task(client.post(path, data=form, headers=FORM_HEADERS))  # no worker here: it waits for the end
    try:
        deadline = time.monotonic() + 10
        while {"gone-1", "gone-2"} & _names(r, flow_id):
            assert time.monotonic() < deadline, _names(r, flow_id)
            assert not waiting.done(), waiting.result()
            await asyncio.sleep(0.05)
        assert {"running", "claiming"} <= _names(r, flow_id)
    finally:
        waiting.cancel()
