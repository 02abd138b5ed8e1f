"""A front door on a Redis Cluster with a shard gone for good (a primary killed, no replica): requests
whose keys live there answer 503 ServiceUnavailable, never 500, whatever redis-py's cluster client
raises for it (connection refused, CLUSTERDOWN, a slot no node serves)."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from common import keys
from common.records import definition_id
from tests.integration.test_cluster_roundtrips import cluster_settings
from tests.integration.test_start_roundtrips import call, signed
from tests.rediscluster import Cluster, cluster_with_broker

FLOW = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    with cluster_with_broker(tmp_path_factory.mktemp("cluster-errors")) as pair:
        yield pair


async def _status(client: TestClient, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    query, form = signed(dict(params))
    resp = await client.post(f"/?{query}", data=form)
    return resp.status, await resp.json()


async def test_a_lost_shard_answers_503_not_500(aiohttp_client: Any, cluster: tuple[Cluster, str]) -> None:
    c, broker = cluster
    settings = cluster_settings(c, broker)
    client: TestClient = await aiohttp_client(make_app(settings))
    await call(client, {"Action": "CreateFlow", "Name": "lost", "Definition": FLOW, "Type": "FDL", "Description": ""})
    flow_id = (await call(client, {"Action": "DescribeFlow", "Name": "lost"}))["Id"]
    account_node = c.owner(keys.flow(settings.account_id, "lost"))
    names = [f"e{i}" for i in range(60)]
    for name in names:
        await call(client, {"Action": "StartExecution", "FlowName": "lost", "ExecutionName": name})
    # Kill a primary that holds executions but neither the flow nor its definition (so those still resolve).
    definition_node = c.owner(keys.definition(definition_id(FLOW)))
    victim = next(n for n in c.primaries() if n is not account_node and n is not definition_node)
    lost = [n for n in names if c.owner(keys.execution(keys.execution_tag(flow_id, n))) is victim]
    kept = [n for n in names if c.owner(keys.execution(keys.execution_tag(flow_id, n))) is not victim]
    c.kill(victim)
    assert lost and kept
    for _ in range(2):  # before and after the other nodes mark it failed
        for name in lost[:1]:  # (each waits out the dead node: ~4 s)
            status, body = await _status(client, {"Action": "DescribeExecution", "FlowName": "lost", "ExecutionName": name})
            assert status == 503 and body["Code"] == "ServiceUnavailable", (status, body)
        await asyncio.to_thread(c.wait_ok)
    # Executions on the other shards answer, or 503 where a key every request reads (the caller's
    # admission counters, say) lived on the lost shard: never a 500.
    for name in kept[:2] + lost[:1]:
        status, body = await _status(client, {"Action": "DescribeExecution", "FlowName": "lost", "ExecutionName": name})
        assert status in (200, 503), (status, body)
        assert status == 503 or name in kept
