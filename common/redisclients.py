"""The one place that builds a client of the state Redis: a single server, or a Redis Cluster.

With `Settings.redis_cluster`, `Settings.redis_url` names one or more nodes of the cluster
(`redis://host:port[,host:port...]`); redis-py's cluster clients find the rest, follow MOVED/ASK
during resharding and re-learn the slots after a failover. Every process builds its state
clients here, so the front door, workers, timers and the CLI all talk to the same topology.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from common.redisurl import for_redis_py
from common.settings import Settings


def seed_nodes(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The (host, port) pairs of a cluster URL (`redis://[user:pass@]h:p[,h:p...]`) and its connection options."""
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ValueError(f"not a Redis URL: {url!r}")
    auth, _, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        parsed = urlsplit(f"redis://{part.strip()}")
        nodes.append((parsed.hostname or "127.0.0.1", parsed.port or 6379))
    options: dict[str, Any] = {}
    if auth:
        user, sep, password = auth.partition(":")
        if sep:
            options.update(username=user or None, password=password)
        else:
            options.update(password=user)
    if scheme == "rediss":
        options["ssl"] = True
    return nodes, options


# A cluster node that stops answering (frozen, cut off) must surface as an error, not a hang: its
# slots fail while the others serve (and the client re-learns the slots once a replica took over).
CLUSTER_SOCKET_TIMEOUT = 5.0


def _cluster_options(options: dict[str, Any]) -> dict[str, Any]:
    if options.get("socket_timeout") is None:
        options["socket_timeout"] = CLUSTER_SOCKET_TIMEOUT
    options.setdefault("socket_connect_timeout", CLUSTER_SOCKET_TIMEOUT)
    return options


def state_client(settings: Settings, **options: Any) -> Any:
    """A sync client of the state Redis: redis.Redis, or redis.cluster.RedisCluster on a cluster."""
    if settings.redis_cluster:
        options = _cluster_options(options)
        nodes, extra = seed_nodes(settings.redis_url)
        seeds = [ClusterNode(h, p) for h, p in nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=seeds, **extra, **options)
    return redis.Redis.from_url(for_redis_py(settings.redis_url), **options)


def async_state_client(settings: Settings, **options: Any) -> Any:
    """An asyncio client of the state Redis: redis.asyncio.Redis, or redis.asyncio.cluster.RedisCluster."""
    if settings.redis_cluster:
        options = _cluster_options(options)
        nodes, extra = seed_nodes(settings.redis_url)
        return AsyncRedisCluster(startup_nodes=[AsyncClusterNode(h, p) for h, p in nodes], **extra, **options)
    return aioredis.from_url(for_redis_py(settings.redis_url), **options)


def async_node_client(settings: Settings, host: str, port: int, **options: Any) -> aioredis.Redis:
    """A plain asyncio client of one node of the state cluster (its credentials and TLS from the URL):
    for what the cluster client cannot do, such as a sharded subscription on the node owning a slot."""
    _, extra = seed_nodes(settings.redis_url)
    options.setdefault("socket_connect_timeout", CLUSTER_SOCKET_TIMEOUT)
    return aioredis.Redis(host=host, port=port, **extra, **options)


def client_for(url: str, cluster: bool, **options: Any) -> Any:
    """A sync client of the state Redis at `url` (a cluster's seeds when `cluster`): for code that has
    the URL rather than the Settings (the heartbeat)."""
    return state_client(Settings.model_construct(redis_url=url, redis_cluster=cluster), **options)


def is_cluster(client: Any) -> bool:
    """Whether `client` (sync or asyncio) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster | AsyncRedisCluster)
