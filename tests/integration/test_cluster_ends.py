"""The end-of-execution channel on a real Redis Cluster (api/waiters.py, commit.lua, watch.lua).

On Redis 7.0+ nodes the waiters use sharded pub/sub: the end is SPUBLISHed on the execution's own
channel, in its slot, and subscribed on the node owning it. On older nodes (the bundled redis-server
is 6.2) they fall back to PUBLISH on the one channel. .ci/run runs tests/integration a second time
with OPENFNF_TEST_REDIS_BINARY set to the machine's Redis 7, which is where the sharded path runs;
each run asserts the flavour its servers call for, so neither path goes untested in CI.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from api.waiters import EndWaiters
from common import keys
from common.driverscripts import Commit, queue_commit
from common.redisclients import async_node_client, async_state_client, state_client
from common.scripts import Scripts
from common.settings import Settings
from common.store import Store
from tests.rediscluster import Cluster, start_cluster

FLOW = "flow-id-ends"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("ends-cluster")), 3, replicas=1)
    try:
        yield c
    finally:
        c.stop()


def _sharded_servers(cluster: Cluster) -> bool:
    versions = [n.client().info("server")["redis_version"] for n in cluster.nodes if n.alive]
    return all(tuple(int(x) for x in str(v).split(".")[:2]) >= (7, 0) for v in versions)


def _settings(cluster: Cluster) -> Settings:
    return Settings(_env_file=None, redis_url=cluster.url, redis_cluster=True)


@pytest.fixture
async def waiters(cluster: Cluster) -> AsyncIterator[tuple[EndWaiters, Store]]:
    settings = _settings(cluster)
    state = async_state_client(settings)
    w = EndWaiters(state, functools.partial(async_node_client, settings))
    await w.start()
    try:
        yield w, Store(state, settings)
    finally:
        await w.stop()
        await state.aclose()


def _running(cluster: Cluster, name: str) -> str:
    tag = keys.execution_tag(FLOW, name)
    r = cluster.client()
    record = {"status": "Running", "name": name, "flow": "f", "acct": "1", "defid": "d", "hseq": "1", "started": "1"}
    r.hset(keys.execution(tag), mapping=record)
    r.set(keys.lease(tag), "tok")
    r.close()
    return tag


def _end(cluster: Cluster, tag: str) -> None:
    """What a driver's last commit does (commit.lua through the real script, on the sync cluster client)."""
    r = state_client(_settings(cluster))
    s = Scripts(r)
    (left,) = s.pipeline_sync(lambda pipe: queue_commit(s, pipe, Commit(tag, "tok", 0, "{}", "", 1, 600, ("status", "Succeeded"))))
    assert int(left) == 0
    r.close()


async def _wait(w: EndWaiters, store: Store, name: str, timeout: float) -> dict[str, str] | None:
    tag = keys.execution_tag(FLOW, name)

    async def read(watch: bool) -> dict[str, str] | None:
        return await store.read_execution(FLOW, name, watch=w.mark if watch else False)

    return await w.until_end(tag, read, timeout)


async def _until(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_the_flavour_follows_the_servers(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    w, _ = waiters
    assert w.mark == ("s" if _sharded_servers(cluster) else "1")


async def test_a_long_poll_answers_when_the_execution_ends(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    w, store = waiters
    tag = _running(cluster, "e1")
    channel = keys.done_channel(tag)
    owner = cluster.owner(keys.execution(tag))
    task = asyncio.create_task(_wait(w, store, "e1", 60))
    if w.sharded:
        # Subscribed on the node owning the execution's slot, sharded, and nothing on the global channel.
        await _until(lambda: owner.client().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1, "no SSUBSCRIBE")
        assert all(n.client().execute_command("PUBSUB", "NUMSUB", keys.DONE_CHANNEL)[1] == 0 for n in cluster.nodes if n.alive)
    else:
        # One subscription to the one channel, on some node (PUBLISH reaches every node).
        await _until(lambda: bool(w._waiters.get(tag)), "no waiter registered")
        assert sum(n.client().execute_command("PUBSUB", "NUMSUB", keys.DONE_CHANNEL)[1] for n in cluster.nodes if n.alive) == 1
    await _until(lambda: cluster.client().hget(keys.execution(tag), "watch") == w.mark.encode(), "not marked watched")
    await asyncio.to_thread(_end, cluster, tag)
    fields = await asyncio.wait_for(task, 30)
    assert fields is not None and fields["status"] == "Succeeded"
    if w.sharded:
        await _until(lambda: owner.client().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 0, "not unsubscribed")


async def test_the_end_is_published_on_the_channel_the_mark_names(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    """commit.lua sends the end where the waiter listens: a sharded subscriber on the owner sees it."""
    w, store = waiters
    tag = _running(cluster, "e2")
    await store.read_execution(FLOW, "e2", watch=w.mark)
    owner = cluster.owner(keys.execution(tag))
    sub = owner.client().pubsub()
    if w.sharded:
        sub.ssubscribe(keys.done_channel(tag))
    else:
        sub.subscribe(keys.DONE_CHANNEL)
    assert sub.get_message(timeout=5) is not None  # the confirmation
    await asyncio.to_thread(_end, cluster, tag)
    deadline = time.monotonic() + 10
    message = None
    while message is None and time.monotonic() < deadline:
        message = sub.get_message(timeout=1)
    assert message is not None and message["data"] == tag.encode(), message
    assert message["type"] in (("smessage",) if w.sharded else ("message",))
    sub.close()


async def test_a_long_poll_answers_through_a_failover(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    """The primary owning a waited-on execution hands over to its replica and dies: the long poll
    neither fails nor misses the end (it ends after the failover), and it answers Succeeded."""
    w, store = waiters
    tag = _running(cluster, "e3")
    old = cluster.owner(keys.execution(tag))
    replica = cluster.replica_of(old)
    assert replica is not None
    task = asyncio.create_task(_wait(w, store, "e3", 120))
    await _until(lambda: cluster.client().hget(keys.execution(tag), "watch") == w.mark.encode(), "not marked watched")
    replica.client().execute_command("CLUSTER", "FAILOVER")
    await _until(lambda: replica.client().info("replication")["role"] == "master", "the replica never took over", 60)
    cluster.kill(old)
    await asyncio.to_thread(cluster.wait_ok)
    if w.sharded:  # the waiter moved its subscription to the new owner
        channel = keys.done_channel(tag)
        await _until(lambda: replica.client().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1, "not resubscribed", 60)
    assert not task.done()
    await asyncio.to_thread(_end, cluster, tag)
    fields = await asyncio.wait_for(task, 60)
    assert fields is not None and fields["status"] == "Succeeded"


async def test_a_long_poll_answers_after_its_primary_froze_and_was_replaced(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    """The owner stops answering (SIGSTOP) and its replica takes over: a subscription on the frozen node
    is given up (it answers no PING) and the waiter subscribes on the new owner; the end still wakes it."""
    w, store = waiters
    name = next(f"f{i}" for i in range(1000) if cluster.replica_of(cluster.owner(keys.execution(keys.execution_tag(FLOW, f"f{i}")))) is not None)
    tag = _running(cluster, name)
    old = cluster.owner(keys.execution(tag))
    replica = cluster.replica_of(old)
    assert replica is not None
    channel = keys.done_channel(tag)
    task = asyncio.create_task(_wait(w, store, name, 120))
    await _until(lambda: cluster.client().hget(keys.execution(tag), "watch") == w.mark.encode(), "not marked watched")
    if w.sharded:
        await _until(lambda: old.client().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1, "no SSUBSCRIBE")
    old.freeze()
    try:
        replica.client().execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        await _until(lambda: replica.client().info("replication")["role"] == "master", "the replica never took over", 60)
        if w.sharded:
            await _until(lambda: replica.client().execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1, "not resubscribed", 60)
        assert not task.done()
        await asyncio.to_thread(_end, cluster, tag)
        fields = await asyncio.wait_for(task, 60)
        assert fields is not None and fields["status"] == "Succeeded"
    finally:
        old.thaw()
        cluster.kill(old)
        await asyncio.to_thread(cluster.wait_ok)


async def test_a_long_poll_on_a_slot_that_moved_behind_the_clients_back(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    """The slot of a waited-on execution moved after the front door learnt the slots: its SSUBSCRIBE meets
    MOVED on the old owner; that waiter subscribes on the new owner, and the other subscriptions on the
    old owner's connection stay."""
    w, store = waiters
    stay = _running(cluster, "m-stay")
    source = cluster.owner(keys.execution(stay))
    name = next(f"m{i}" for i in range(10_000) if cluster.owner(keys.execution(keys.execution_tag(FLOW, f"m{i}"))) is source)
    tag = _running(cluster, name)
    target = next(n for n in cluster.primaries() if n is not source)
    staying = asyncio.create_task(_wait(w, store, "m-stay", 120))
    if w.sharded:
        await _until(lambda: source.client().execute_command("PUBSUB", "SHARDNUMSUB", keys.done_channel(stay))[1] == 1, "no SSUBSCRIBE")
    cluster.move_slot(key_slot(keys.execution(tag).encode()), target)
    moved = asyncio.create_task(_wait(w, store, name, 120))
    if w.sharded:
        await _until(lambda: target.client().execute_command("PUBSUB", "SHARDNUMSUB", keys.done_channel(tag))[1] == 1, "not subscribed on the new owner", 60)
        assert source.client().execute_command("PUBSUB", "SHARDNUMSUB", keys.done_channel(stay))[1] == 1
    await _until(lambda: cluster.client().hget(keys.execution(tag), "watch") == w.mark.encode(), "not marked watched")
    await asyncio.to_thread(_end, cluster, tag)
    fields = await asyncio.wait_for(moved, 60)
    assert fields is not None and fields["status"] == "Succeeded"
    assert not staying.done()
    await asyncio.to_thread(_end, cluster, stay)
    fields = await asyncio.wait_for(staying, 60)
    assert fields is not None and fields["status"] == "Succeeded"


async def test_a_long_poll_times_out_with_the_current_state(cluster: Cluster, waiters: tuple[EndWaiters, Store]) -> None:
    w, store = waiters
    _running(cluster, "e4")
    fields = await _wait(w, store, "e4", 1)
    assert fields is not None and fields["status"] == "Running"


def test_a_server_without_spublish_still_publishes(cluster: Cluster) -> None:
    """The 's' mark on a node that has no SPUBLISH (a rolling upgrade) still ends the execution: commit.lua
    falls back to PUBLISH. On Redis 7 SPUBLISH exists, so this checks that the commit succeeds either way."""
    tag = _running(cluster, "e5")
    r = cluster.client()
    r.hset(keys.execution(tag), "watch", "s")
    _end(cluster, tag)
    assert r.hget(keys.execution(tag), "status") == b"Succeeded"
    with pytest.raises(redis.ResponseError) if not _sharded_servers(cluster) else contextlib.nullcontext():
        cluster.owner(keys.execution(tag)).client().execute_command("SPUBLISH", keys.done_channel(tag), "x")
    r.close()

