"""StartExecution's round trips on a real 3-primary Redis Cluster (issue 17): still three sequential
steps (the admission, the claim, the drive hand-off), each one write per node it reaches, sent
concurrently; the wake-up lands in the first, before the claim."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio.connection as aioconn
from aiohttp.test_utils import TestClient
from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from api.app import make_app
from common import keys
from common.settings import Settings
from openfnf.redisserver import start_redis
from tests.integration.test_start_roundtrips import KEY, SECRET, call
from tests.rediscluster import Cluster, start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    tmp = tmp_path_factory.mktemp("cluster-rt")
    c = start_cluster(tmp / "cluster", 3)
    broker = start_redis(tmp / "broker", aof=False)
    try:
        yield c, broker.url
    finally:
        broker.stop()
        c.stop()


class Writes:
    """Every write of every asyncio connection, in order, with the port it went to (the broker's unix
    socket counts as port 0), grouped in steps: each cluster pipeline or lone cluster command is one."""

    def __init__(self) -> None:
        self.steps: list[list[tuple[int, bytes]]] = []

    def __enter__(self) -> Writes:
        self._send = aioconn.AbstractConnection.send_packed_command
        self._pipe = AsyncClusterPipeline.execute
        self._cmd = AsyncRedisCluster.execute_command
        writes = self

        async def send(conn: Any, command: Any, check_health: bool = True) -> None:
            raw = b"".join(bytes(c) for c in command) if isinstance(command, list | tuple) else bytes(command)
            port = int(getattr(conn, "port", 0) or 0)
            if port == 0 or not writes.steps:
                writes.steps.append([])  # a broker write is a step of its own
            writes.steps[-1].append((port, raw))
            await writes._send(conn, command, check_health)

        async def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            writes.steps.append([])
            return await writes._pipe(pipe, *args, **kwargs)

        async def command(client: Any, *args: Any, **kwargs: Any) -> Any:
            writes.steps.append([])
            return await writes._cmd(client, *args, **kwargs)

        aioconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        AsyncClusterPipeline.execute = execute  # type: ignore[method-assign]
        AsyncRedisCluster.execute_command = command  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aioconn.AbstractConnection.send_packed_command = self._send  # type: ignore[method-assign]
        AsyncClusterPipeline.execute = self._pipe  # type: ignore[method-assign]
        AsyncRedisCluster.execute_command = self._cmd  # type: ignore[method-assign]


async def test_start_execution_is_three_steps_on_a_cluster(aiohttp_client: Any, cluster: tuple[Cluster, str], tmp_path: Path) -> None:
    c, broker = cluster
    settings = Settings(
        redis_url=c.url, redis_cluster=True, broker_url=broker, access_key_id=KEY, access_key_secret=SECRET,
        throttle_refresh_ms=600_000, _env_file=None,
    )  # fmt: skip
    client: TestClient = await aiohttp_client(make_app(settings))
    definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
    await call(client, {"Action": "CreateFlow", "Name": "rt", "Definition": definition, "Type": "FDL", "Description": ""})
    for i in range(3):  # warm: scripts loaded, slots learnt, a connection to every primary
        await call(client, {"Action": "StartExecution", "FlowName": "rt", "ExecutionName": f"warm{i}"})
    with Writes() as w:
        await call(client, {"Action": "StartExecution", "FlowName": "rt", "ExecutionName": "counted"})
    steps = [step for step in w.steps if step]
    assert len(steps) == 3, steps
    for step in steps:
        ports = [port for port, _ in step]
        assert len(ports) == len(set(ports)), step  # one write per node in a step (sent concurrently)
    assert [port for port, _ in steps[2]] == [0]  # the drive hand-off last, on the broker
    wake = keys.pending_start(settings.account_id, "rt", "counted").encode()
    assert any(wake in raw for _, raw in steps[0]), "the wake-up is written in the first step, before the claim"
    assert any(b"EVALSHA" in raw and b"counted" in raw for _, raw in steps[1])  # the claim in the second
    assert c.client().zscore(keys.wake_for(wake.decode(), settings.partitions), wake.decode()) is not None
