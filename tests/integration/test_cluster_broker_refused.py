"""A broker URL that names a node of a Redis Cluster is refused at start-up with a clear message
(issue 17: Celery's Redis transport cannot use a cluster), whatever the state is; a plain Redis or an
unreachable broker is not refused."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.brokers import BrokerConfigError, refuse_cluster_server
from common.settings import Settings
from openfnf.redisserver import free_port
from tests.conftest import ROOT
from tests.rediscluster import Cluster, start_cluster

MESSAGE = "is a node of a Redis Cluster, and Celery's Redis transport cannot use a cluster as its broker"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("broker-cluster")), 1)
    try:
        yield c
    finally:
        c.stop()


def test_a_broker_url_naming_a_cluster_node_is_refused(cluster: Cluster, redis_server: str) -> None:
    node = f"redis://127.0.0.1:{cluster.nodes[0].port}/0"
    with pytest.raises(BrokerConfigError, match=MESSAGE):
        refuse_cluster_server(Settings(_env_file=None, redis_url=redis_server, broker_url=node))


def test_a_plain_redis_or_an_unreachable_broker_is_not_refused(redis_server: str) -> None:
    refuse_cluster_server(Settings(_env_file=None, redis_url=redis_server))  # the state's own Redis
    refuse_cluster_server(Settings(_env_file=None, redis_url=redis_server, broker_url=redis_server))
    refuse_cluster_server(Settings(_env_file=None, redis_url=redis_server, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    refuse_cluster_server(Settings(_env_file=None, redis_url=redis_server, broker_url="amqp://guest:guest@127.0.0.1:1//"))


@pytest.mark.parametrize("role", ["api", "worker", "timers"])
def test_every_process_refuses_a_cluster_broker_at_start(cluster: Cluster, redis_server: str, role: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
    env.update(OPENFNF_REDIS_URL=redis_server, OPENFNF_BROKER_URL=f"redis://127.0.0.1:{cluster.nodes[0].port}/0", OPENFNF_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "openfnf", role], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert MESSAGE in done.stderr, done.stderr[-2000:]
