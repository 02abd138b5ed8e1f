"""The running count spread over shards (common/runcount.py, issue 17) on a real 3-primary Redis Cluster: its
keys land on more than one primary, the sum is read from every node in one pipeline (sync and asyncio), and
the front door's cap check (api/throttle.py Check, as the admission queues it) refuses at the cap."""
from __future__ import annotations

import pytest
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from api.credentials import AccessKey
from api.throttle import Limiter
from common import keys, runcount
from common.errors import ResourceThrottled
from common.settings import Settings
from tests.integration.test_cluster_scripts import cluster
from tests.rediscluster import Cluster

ACCOUNT = "1234567890"
N = Settings(_env_file=None).running_shards

__all__ = ["cluster"]  # the 3-primary cluster fixture, used by name


def test_the_counts_shards_land_on_more_than_one_primary_and_add_up(cluster: Cluster) -> None:
    owners = {cluster.owner(k).port for k in runcount.shard_keys(ACCOUNT, N)}
    assert len(owners) > 1, owners  # (8 shards over 3 primaries: all of them, for this account)
    client = cluster.client()
    tags = [keys.execution_tag("flow", f"e{i}") for i in range(300)]
    pipe = client.pipeline(transaction=False)
    for t in tags:
        pipe.incr(runcount.key_for(ACCOUNT, t, N))  # the starts
    for t in tags[:100]:
        pipe.decr(runcount.key_for(ACCOUNT, t, N))  # and the ends of a third of them
    pipe.execute()
    # Each node's keys took their share: no node holds every start.
    per_node: dict[int, int] = {}
    for k in runcount.shard_keys(ACCOUNT, N):
        port = cluster.owner(k).port
        per_node[port] = per_node.get(port, 0) + int(client.get(k) or 0)
    assert len(per_node) > 1 and max(per_node.values()) < 200
    assert runcount.read_total_sync(client, ACCOUNT, N) == 200


async def test_the_cap_is_checked_against_the_sum_on_a_cluster(cluster: Cluster) -> None:
    account = "acct-cluster-cap"
    client = cluster.client()
    for k in range(N):
        client.set(keys.running(account, k), 1)  # N running, one in each shard
    aclient = AsyncRedisCluster(startup_nodes=[AsyncClusterNode("127.0.0.1", n.port) for n in cluster.nodes])
    key = AccessKey("LTAIclustercap", "secret", account)
    try:
        assert await runcount.read_total(aclient, account, N) == N
        limiter = Limiter(aclient, Settings(_env_file=None, max_running_executions=N + 1, throttle_refresh_ms=600_000))
        await limiter.admit("StartExecution", key, {})  # N < N + 1: admitted
        limiter = Limiter(aclient, Settings(_env_file=None, max_running_executions=N, throttle_refresh_ms=600_000))
        with pytest.raises(ResourceThrottled) as refused:
            await limiter.admit("StartExecution", key, {})
        assert f"has {N} running executions, the limit is {N}" in refused.value.message
    finally:
        await aclient.aclose()
