"""StartExecution's round trips on a real 3-primary Redis Cluster (issue 17): still three sequential
steps (the admission, the claim, the drive hand-off), each one write per node it reaches, sent
concurrently; the wake-up lands in the first, before the claim."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio.connection as aioconn
from aiohttp.test_utils import TestClient
from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.app import make_app
from api.batching import PipelineBatcher
from common import keys
from common.redisclients import async_state_client
from common.scripts import Scripts
from common.settings import Settings
from openfnf.rediscluster import command as node_command
from tests.integration.test_start_roundtrips import KEY, SECRET, call, signed
from tests.rediscluster import Cluster, Node, cluster_with_broker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    with cluster_with_broker(tmp_path_factory.mktemp("cluster-rt")) as pair:
        yield pair


_BATCH: contextvars.ContextVar[list[tuple[int, bytes]]] = contextvars.ContextVar("batch")


class Writes:
    """Every write of every asyncio connection, in order, with the port it went to (the broker's unix
    socket counts as port 0), grouped in steps: each front door batch (PipelineBatcher, its writes told
    apart by their context even when batches overlap), cluster pipeline or lone cluster command is one.
    `answers` holds what each batch's nodes answered (error replies in place)."""

    def __init__(self) -> None:
        self.steps: list[list[tuple[int, bytes]]] = []
        self.answers: list[list[Any]] = []

    def __enter__(self) -> Writes:
        self._send = aioconn.AbstractConnection.send_packed_command
        self._pipe = AsyncClusterPipeline.execute
        self._cmd = AsyncRedisCluster.execute_command
        self._batch = PipelineBatcher._execute_per_node
        writes = self

        async def send(conn: Any, command: Any, check_health: bool = True) -> None:
            raw = b"".join(bytes(c) for c in command) if isinstance(command, list | tuple) else bytes(command)
            port = int(getattr(conn, "port", 0) or 0)
            batch = _BATCH.get(None)
            if batch is not None and port != 0:
                batch.append((port, raw))
            else:
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

        async def batch(batcher: Any, *args: Any, **kwargs: Any) -> Any:
            step: list[tuple[int, bytes]] = []
            writes.steps.append(step)
            token = _BATCH.set(step)  # copied into the tasks that write to each node
            try:
                answers = await writes._batch(batcher, *args, **kwargs)
            finally:
                _BATCH.reset(token)
            writes.answers.append(answers)
            return answers

        aioconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        AsyncClusterPipeline.execute = execute  # type: ignore[method-assign]
        AsyncRedisCluster.execute_command = command  # type: ignore[method-assign]
        PipelineBatcher._execute_per_node = batch  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aioconn.AbstractConnection.send_packed_command = self._send  # type: ignore[method-assign]
        AsyncClusterPipeline.execute = self._pipe  # type: ignore[method-assign]
        AsyncRedisCluster.execute_command = self._cmd  # type: ignore[method-assign]
        PipelineBatcher._execute_per_node = self._batch  # type: ignore[method-assign]

    def met(self, error: type[Exception]) -> int:
        """How many commands the batches' nodes answered with `error`."""
        return sum(isinstance(answer, error) for answers in self.answers for answer in answers)


async def test_start_execution_is_three_steps_on_a_cluster(aiohttp_client: Any, cluster: tuple[Cluster, str], tmp_path: Path) -> None:
    c, broker = cluster
    settings = cluster_settings(c, broker)
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


async def test_a_pure_flow_started_on_a_cluster_is_two_steps_and_ends_there(aiohttp_client: Any, cluster: tuple[Cluster, str], tmp_path: Path) -> None:
    """The default on a cluster: the admission, then the claim writing the ended execution; no wake-up, no hand-off."""
    c, broker = cluster
    settings = cluster_settings(c, broker, pure_at_start_events=Settings.model_fields["pure_at_start_events"].default)
    client: TestClient = await aiohttp_client(make_app(settings))
    await call(client, {"Action": "CreateFlow", "Name": "pure", "Definition": DEFINITION, "Type": "FDL", "Description": ""})
    for i in range(3):  # warm, and the flow known as pure (api/admission.py remember_pure)
        await call(client, {"Action": "StartExecution", "FlowName": "pure", "ExecutionName": f"warm{i}"})
    with Writes() as w:
        answer = await call(client, {"Action": "StartExecution", "FlowName": "pure", "ExecutionName": "counted"})
    assert answer["Status"] == "Succeeded"
    steps = [step for step in w.steps if step]
    assert len(steps) == 2, steps
    assert all(port != 0 for step in steps for port, _ in step)  # nothing for the broker
    assert not any(b"ZADD" in raw and b"counted" in raw and b"fnf:w" in raw for step in steps for _, raw in step)
    assert any(b"EVALSHA" in raw and b"counted" in raw for _, raw in steps[1])
    wake = keys.pending_start(settings.account_id, "pure", "counted")
    assert c.client().zscore(keys.wake_for(wake, settings.partitions), wake) is None


DEFINITION = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
HANDSHAKE = {b"HELLO", b"CLIENT", b"AUTH", b"SELECT", b"READONLY"}  # a new connection's, not a batch's


def cluster_settings(c: Cluster, broker: str, pure_at_start_events: int = 0) -> Settings:
    """The in-process front door's settings on cluster `c` with its broker (the test key, no throttle reloads).
    Its Pass flows go to the workers, as any flow (the start's own run of a pure flow, common/purestart.py, is off)
    unless `pure_at_start_events` is given."""
    return Settings(
        redis_url=c.url, redis_cluster=True, broker_url=broker, access_key_id=KEY, access_key_secret=SECRET,
        throttle_refresh_ms=600_000, pure_at_start_events=pure_at_start_events, _env_file=None,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _warm_batcher(c: Cluster, broker: str, timeout: float = 5.0) -> AsyncIterator[PipelineBatcher]:
    """A PipelineBatcher on a cluster client of its own, the slots learnt and a connection open to every primary."""
    hot = async_state_client(cluster_settings(c, broker), socket_timeout=None)
    batcher = PipelineBatcher(hot, Scripts(hot), timeout=timeout)
    try:
        await batcher.pipeline(lambda pipe: [pipe.set(f"warm:{{{i}}}", 1) for i in range(30)])
        yield batcher
    finally:
        await batcher.close()
        await hot.aclose()


async def _app_with_flow(aiohttp_client: Any, settings: Settings, flow: str) -> tuple[TestClient, str]:
    client: TestClient = await aiohttp_client(make_app(settings))
    await call(client, {"Action": "CreateFlow", "Name": flow, "Definition": DEFINITION, "Type": "FDL", "Description": ""})
    flow_id = (await call(client, {"Action": "DescribeFlow", "Name": flow}))["Id"]
    return client, str(flow_id)


async def _start(client: TestClient, flow: str, names: list[str]) -> list[dict[str, Any]]:
    """StartExecution for every name at once (each answers 200: `call` asserts it)."""
    return await asyncio.gather(*(call(client, {"Action": "StartExecution", "FlowName": flow, "ExecutionName": n}) for n in names))


def _batch_writes(step: list[tuple[int, bytes]]) -> list[int]:
    """The ports a batch wrote to, a new connection's handshake left out."""
    return [port for port, raw in step if raw.split(b"\r\n", 3)[2].upper() not in HANDSHAKE]


def _one_execution_each(c: Cluster, settings: Settings, flow_id: str, names: list[str]) -> None:
    r = c.client()
    try:
        for name in names:
            tag = keys.execution_tag(flow_id, name)
            assert r.hget(keys.execution(tag), "status") is not None, name
            assert r.zscore(keys.executions_index(flow_id), name) is not None, name
        listed = {m.decode() for m in r.zrange(keys.executions_index(flow_id), 0, -1)}
        assert set(names) <= listed
    finally:
        r.close()


async def test_concurrent_starts_make_one_write_per_node_per_batch(aiohttp_client: Any, cluster: tuple[Cluster, str]) -> None:
    c, broker = cluster
    settings = cluster_settings(c, broker)
    client, flow_id = await _app_with_flow(aiohttp_client, settings, "burst")
    await _start(client, "burst", [f"warm{i}" for i in range(20)])  # connections to every primary
    names = [f"run{i}" for i in range(40)]
    with Writes() as w:
        answers = await _start(client, "burst", names)
    assert sorted(a["Name"] for a in answers) == sorted(names)
    node_steps = [ports for ports in (_batch_writes(step) for step in w.steps) if ports and 0 not in ports]
    assert node_steps
    for ports in node_steps:  # each batch (and each lone command) of the cluster's nodes
        assert len(ports) == len(set(ports)), ports  # at most one write per node in each step
    commands = sum(len(a) for a in w.answers)
    assert len(w.answers) < commands  # batched: fewer batches than commands (every start queues several)
    _one_execution_each(c, settings, flow_id, names)


async def test_callers_of_one_iteration_share_one_write_per_node(cluster: tuple[Cluster, str]) -> None:
    c, broker = cluster
    ports = {n.port for n in c.primaries()}
    async with _warm_batcher(c, broker) as batcher:

        def build(i: int) -> Any:
            def queue(pipe: Any) -> None:
                pipe.set(f"nonce:{i}", 1, nx=True)  # a slot of its own
                pipe.incr("{acct}:running")  # one slot shared by every caller
                pipe.zadd(f"wake:{{{i % 5}}}", {f"m{i}": i + 0.5})
                batcher.scripts.queue(pipe, "watch", [f"x:{{{i}}}"], ["0", "status"])  # an EVALSHA, keys after numkeys
                pipe.hmget(f"h:{{{i}}}", "a", "b")

            return queue

        r = c.client()
        r.set("nonce:3", "taken")
        r.hset("h:{5}", mapping={"a": "x"})
        with Writes() as w:
            answers = await asyncio.gather(*(batcher.pipeline(build(i)) for i in range(30)))
        assert len(w.answers) == 1  # one batch
        written = _batch_writes(w.steps[0])
        assert sorted(written) == sorted(ports)  # one write to each primary, no more
        for i, (was_set, _count, added, watched, fields) in enumerate(answers):
            assert watched is None  # no such execution
            assert was_set is (None if i == 3 else True)  # the cluster's reply callbacks applied
            assert added == 1
            assert fields == ([b"x", None] if i == 5 else [None, None])
        assert sorted(count for _, count, _, _, _ in answers) == list(range(1, 31))  # each INCR ran once
        assert r.zscore("wake:{2}", "m7") == 7.5
        r.close()


def _names_in_slot(flow_id: str, slot: int, prefix: str, count: int) -> list[str]:
    names: list[str] = []
    i = 0
    while len(names) < count:
        name = f"{prefix}{i}"
        if key_slot(keys.execution(keys.execution_tag(flow_id, name)).encode()) == slot:
            names.append(name)
        i += 1
    return names


def _begin_migration(src: Node, dst: Node, slot: int) -> None:
    node_command(dst.client(), "CLUSTER", "SETSLOT", slot, "IMPORTING", src.myid())
    node_command(src.client(), "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.myid())


def _end_migration(c: Cluster, src: Node, dst: Node, slot: int) -> None:
    while held := node_command(src.client(), "CLUSTER", "GETKEYSINSLOT", slot, 100):
        node_command(src.client(), "MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *held)
    for node in c.primaries():
        node_command(node.client(), "CLUSTER", "SETSLOT", slot, "NODE", dst.myid())
    c.wait_ok()


async def test_starts_after_a_slot_moved_are_redirected_and_each_runs_once(aiohttp_client: Any, cluster: tuple[Cluster, str]) -> None:
    """A slot moved to another node under the front door (its slot map stale): the claims sent to the
    old owner answer MOVED and run again through redis-py's pipeline; every start answers, each once.

    (Not during the migration itself: a claim is a script over several keys, and Redis answers a
    multi-key command in a slot being migrated TRYAGAIN until the keys are all on one side; redis-py
    retries it until the migration ends or its redirections run out.)"""
    c, broker = cluster
    settings = cluster_settings(c, broker)
    client, flow_id = await _app_with_flow(aiohttp_client, settings, "moving")
    await _start(client, "moving", [f"warm{i}" for i in range(10)])  # the slots learnt
    slot = key_slot(keys.execution(keys.execution_tag(flow_id, "moved0")).encode())
    src = c.owner(keys.execution(keys.execution_tag(flow_id, "moved0")))
    dst = next(n for n in c.primaries() if n.port != src.port)
    moved = ["moved0", *_names_in_slot(flow_id, slot, "moved-", 5)]
    others = [f"other{i}" for i in range(10)]  # in other slots, batched beside them
    _begin_migration(src, dst, slot)
    _end_migration(c, src, dst, slot)
    with Writes() as w:
        answers = await _start(client, "moving", moved + others)
    assert sorted(a["Name"] for a in answers) == sorted(moved + others)
    assert w.met(MovedError) > 0  # the front door still sent them to the old owner
    _one_execution_each(c, settings, flow_id, moved + others)
    assert c.owner(keys.execution(keys.execution_tag(flow_id, "moved0"))).port == dst.port
    with Writes() as w:  # the slot map learnt: no more redirections
        await _start(client, "moving", _names_in_slot(flow_id, slot, "after-", 2))
    assert w.met(AskError) == 0
    # Started again, a running name answers the execution its one claim made.
    first = next(a for a in answers if a["Name"] == "moved0")
    again = (await _start(client, "moving", ["moved0"]))[0]
    assert again["StartedTime"] == first["StartedTime"]


async def test_a_batch_follows_ask_then_moved_during_a_migration(cluster: tuple[Cluster, str]) -> None:
    """Single-key commands in a slot being migrated (ASK: they run on the importing node) and then
    moved (MOVED), batched with commands elsewhere: each runs once, each caller gets its answers."""
    c, broker = cluster
    slot = key_slot(b"{ask}")
    src = c.owner("{ask}")
    dst = next(n for n in c.primaries() if n.port != src.port)
    async with _warm_batcher(c, broker) as batcher:

        def write(i: int) -> Any:
            def queue(pipe: Any) -> None:
                pipe.incr(f"count:{{{i}}}")
                pipe.set(f"{{ask}}:{i}", i, nx=True)  # missing on the migrating node: ASK
                pipe.incr("{ask-counter}")

            return queue

        _begin_migration(src, dst, slot)
        with Writes() as w:
            answers = await asyncio.gather(*(batcher.pipeline(write(i)) for i in range(20)))
        assert w.met(AskError) == 20 and w.met(MovedError) == 0
        assert [a[:2] for a in answers] == [[1, True]] * 20  # each command ran once
        assert sorted(a[2] for a in answers) == list(range(1, 21))
        assert node_command(dst.client(), "CLUSTER", "COUNTKEYSINSLOT", slot) == 20  # on the importing node
        assert node_command(src.client(), "CLUSTER", "COUNTKEYSINSLOT", slot) == 0

        _end_migration(c, src, dst, slot)
        with Writes() as w:
            reads = await asyncio.gather(*(batcher.pipeline(lambda pipe, i=i: pipe.get(f"{{ask}}:{i}")) for i in range(20)))
        assert w.met(MovedError) > 0
        assert reads == [[str(i).encode()] for i in range(20)]


async def test_noscript_on_one_node_in_a_batch(aiohttp_client: Any, cluster: tuple[Cluster, str]) -> None:
    c, broker = cluster
    settings = cluster_settings(c, broker)
    client, flow_id = await _app_with_flow(aiohttp_client, settings, "flushed")
    await _start(client, "flushed", [f"warm{i}" for i in range(10)])
    names = [f"run{i}" for i in range(30)]
    c.primaries()[1].client().script_flush()  # one node lost its scripts (a restart without them)
    with Writes() as w:
        answers = await _start(client, "flushed", names)
    assert sorted(a["Name"] for a in answers) == sorted(names)
    assert w.met(NoScriptError) > 0  # met in a batch, settled there
    _one_execution_each(c, settings, flow_id, names)


async def test_a_node_that_dropped_its_connections_fails_no_caller(cluster: tuple[Cluster, str]) -> None:
    """A node closed the batch's connection (a restart, a proxy, CLIENT KILL): the commands sent to it
    run again through redis-py's pipeline, which reconnects; the other nodes' answers stand, each
    command ran once."""
    c, broker = cluster
    victim = c.primaries()[0]
    async with _warm_batcher(c, broker) as batcher:
        node_command(victim.client(), "CLIENT", "KILL", "TYPE", "normal")
        with Writes() as w:
            answers = await asyncio.gather(*(batcher.pipeline(lambda pipe, i=i: pipe.incr(f"dropped:{{{i}}}").incr("dropped-total")) for i in range(30)))
        assert w.met(RedisConnectionError) > 0
        assert [a[0] for a in answers] == [1] * 30  # each ran once
        assert sorted(a[1] for a in answers) == list(range(1, 31))


async def test_a_node_that_does_not_answer_fails_only_its_callers(cluster: tuple[Cluster, str]) -> None:
    """One node frozen past the batch's timeout: the callers with a command there fail (a timeout, as the
    front door answers when Redis does not), the callers of the same batch on other nodes get their answers."""
    c, broker = cluster
    frozen = c.primaries()[2]
    keys_by_node: dict[int, list[str]] = {}
    for i in range(200):
        keys_by_node.setdefault(c.owner(f"frozen:{{{i}}}").port, []).append(f"frozen:{{{i}}}")
    there, elsewhere = keys_by_node[frozen.port][:5], [k for p, ks in keys_by_node.items() if p != frozen.port for k in ks[:5]]
    async with _warm_batcher(c, broker, timeout=1.0) as batcher:
        frozen.freeze()
        try:
            answers = await asyncio.gather(*(batcher.pipeline(lambda pipe, k=k: pipe.incr(k)) for k in there + elsewhere), return_exceptions=True)
        finally:
            frozen.thaw()
        assert all(isinstance(a, RedisTimeoutError) for a in answers[: len(there)]), answers
        assert answers[len(there) :] == [[1]] * len(elsewhere)


async def test_batches_in_flight_together_follow_ask(cluster: tuple[Cluster, str]) -> None:
    """Several batches waiting for Redis at once, their commands in a migrating slot answered ASK: each
    runs once on the importing node (ASKING and the command on one connection, which redis-py's own
    client does not ensure when callers run concurrently)."""
    c, broker = cluster
    slot = key_slot(b"{asks}")
    src = c.owner("{asks}")
    dst = next(n for n in c.primaries() if n.port != src.port)
    async with _warm_batcher(c, broker) as batcher:

        async def caller(i: int) -> list[Any]:
            for _ in range(i % 6):  # a batch per loop iteration: six in flight together
                await asyncio.sleep(0)
            return await batcher.pipeline(lambda pipe: pipe.set(f"{{asks}}:{i}", i, nx=True).incr(f"asks:{{{i}}}"))

        _begin_migration(src, dst, slot)
        with Writes() as w:
            answers = await asyncio.gather(*(caller(i) for i in range(60)))
        assert len(w.answers) > 1  # several batches
        assert w.met(AskError) == 60
        assert answers == [[True, 1]] * 60  # each ran once
        assert node_command(dst.client(), "CLUSTER", "COUNTKEYSINSLOT", slot) == 60
        _end_migration(c, src, dst, slot)


async def test_a_start_while_its_slot_is_migrating_is_a_503_then_runs_once_after(aiohttp_client: Any, cluster: tuple[Cluster, str]) -> None:
    """A claim in a slot half moved meets TRYAGAIN until the migration ends (Redis refuses a multi-key
    script there), and redis-py gives up with "TTL exhausted": the start is a moment's unavailability,
    503 ServiceUnavailable, never a 500; once the slot has moved the same name starts, once."""
    c, broker = cluster
    settings = cluster_settings(c, broker)
    client, flow_id = await _app_with_flow(aiohttp_client, settings, "migrating")
    await _start(client, "migrating", [f"warm{i}" for i in range(10)])  # the slots learnt
    name = "mig0"
    slot = key_slot(keys.execution(keys.execution_tag(flow_id, name)).encode())
    src = c.owner(keys.execution(keys.execution_tag(flow_id, name)))
    dst = next(n for n in c.primaries() if n.port != src.port)
    held = _names_in_slot(flow_id, slot, "held-", 1)
    await _start(client, "migrating", held)  # a running execution's keys stay on the source meanwhile
    _begin_migration(src, dst, slot)
    try:
        query, form = signed({"Action": "StartExecution", "FlowName": "migrating", "ExecutionName": name})
        resp = await client.post(f"/?{query}", data=form)
        body = await resp.json()
        assert resp.status == 503 and body["Code"] == "ServiceUnavailable", (resp.status, body)
    finally:
        _end_migration(c, src, dst, slot)
    answer = (await _start(client, "migrating", [name]))[0]
    again = (await _start(client, "migrating", [name]))[0]
    assert answer["StartedTime"] == again["StartedTime"]
    _one_execution_each(c, settings, flow_id, [name, *held])
