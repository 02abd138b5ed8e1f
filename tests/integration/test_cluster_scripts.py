"""Scripts on a real 3-primary Redis Cluster (issue 17): pipelines mixing slots run (grouped per node
by redis-py), and after the servers lost their scripts (NOSCRIPT) only the script calls run again."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from common import keys
from common.scripts import Scripts
from tests.rediscluster import Cluster, start_cluster

TAGS = [keys.execution_tag("flow", f"e{i}") for i in range(12)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster-scripts"), 3)
    try:
        yield c
    finally:
        c.stop()


def _build(s: Scripts, prefix: str) -> Any:
    def build(pipe: Any) -> None:
        for tag in TAGS:
            pipe.incr(f"count:{prefix}")
            s.queue(pipe, "claim", [keys.execution(prefix + tag), keys.inbox(prefix + tag)], [json.dumps({"t": "Started"}), 0, "status", "Running"])

    return build


def _flush(cluster: Cluster) -> None:
    for node in cluster.primaries():
        node.client().script_flush()


def test_a_sync_pipeline_over_every_node_recovers_from_noscript(cluster: Cluster) -> None:
    client = cluster.client()
    assert len({cluster.owner(keys.execution(t)).port for t in TAGS}) == 3  # the tags reach every primary
    s = Scripts(client)
    _flush(cluster)
    results = s.pipeline_sync(_build(s, "sync:"))
    assert [int(r[0]) for r in results[1::2]] == [1] * len(TAGS)
    assert int(client.get("count:sync:")) == len(TAGS)  # the INCRs ran once each
    assert all(client.llen(keys.inbox("sync:" + t)) == 1 for t in TAGS)


async def test_an_async_pipeline_over_every_node_recovers_from_noscript(cluster: Cluster) -> None:
    client = AsyncRedisCluster(startup_nodes=[AsyncClusterNode("127.0.0.1", n.port) for n in cluster.nodes])
    try:
        s = Scripts(client)
        _flush(cluster)
        results = await s.pipeline(_build(s, "async:"))
        assert [int(r[0]) for r in results[1::2]] == [1] * len(TAGS)
        assert int(await client.get("count:async:")) == len(TAGS)
        again = await s.pipeline(_build(s, "async:"))  # claimed already: the holder's fields
        assert [int(r[0]) for r in again[1::2]] == [0] * len(TAGS)
    finally:
        await client.aclose()


def test_the_throttle_cli_works_on_a_cluster(cluster: Cluster) -> None:
    from click.testing import CliRunner

    from openfnf.cli import main

    env = {"OPENFNF_REDIS_CLUSTER": "true", "OPENFNF_REDIS_URL": cluster.url}
    set_ = CliRunner().invoke(main, ["throttle", "set", "--action", "StartExecution", "--rate", "5", "--burst", "10"], env=env)
    assert set_.exit_code == 0, set_.output
    shown = CliRunner().invoke(main, ["throttle", "show", "--json"], env=env)
    assert shown.exit_code == 0 and "StartExecution" in shown.output, shown.output
    assert cluster.client().hlen(keys.THROTTLE_RULES) == 1
