"""A real Redis Cluster for tests: the cluster itself is formed by openfnf/rediscluster.py (shared with
the benchmark); this adds OpenFnF's processes on it.

Failure to start raises: the tests that need a cluster fail, never skip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from openfnf.rediscluster import SLOTS, Cluster, Node, start_cluster
from openfnf.redisserver import free_port, start_redis
from tests.conftest import Service

__all__ = ["SLOTS", "Cluster", "Node", "cluster_with_broker", "running_cluster_service", "start_cluster"]


@contextlib.contextmanager
def cluster_with_broker(tmp: Path) -> Iterator[tuple[Cluster, str]]:
    """A fresh 3-primary Redis Cluster for the state and the URL of a single redis-server for the broker
    (for tests that build the front door in process)."""
    cluster = start_cluster(tmp / "cluster", 3)
    broker = start_redis(tmp / "broker", aof=False)
    try:
        yield cluster, broker.url
    finally:
        broker.stop()
        cluster.stop()


@contextlib.contextmanager
def running_cluster_service(tmp: Path, workers: int = 1, timers: int = 1, replicas: int = 0, **env: str) -> Iterator[tuple[Service, Cluster]]:
    """OpenFnF as processes with its state on a fresh 3-primary Redis Cluster and its broker on a
    separate single redis-server (kombu cannot use a cluster)."""
    cluster = start_cluster(tmp / "cluster", 3, replicas)
    broker = start_redis(tmp / "broker", aof=False)
    svc = Service(
        workdir=tmp, redis=broker, redis_url=cluster.url, port=free_port(),
        env_extra={"OPENFNF_REDIS_CLUSTER": "true", "OPENFNF_BROKER_URL": broker.url, **env},
    )  # fmt: skip
    try:
        svc.start("api", "api")
        for i in range(workers):
            svc.start(f"worker{i}", "worker", "--hostname", f"w{i}@%h")
        for i in range(timers):
            svc.start(f"timers{i}", "timers")
        yield svc, cluster
    finally:
        svc.close()
        cluster.stop()
