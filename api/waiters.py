"""Long polls (DescribeExecution WaitTimeSeconds, StartSyncExecution): woken by pub/sub when an execution ends.

commit.lua publishes a watched execution's tag when it ends, the way the record's `watch` mark says
(`EndWaiters.mark`, written by the waiter's own read or by the sync start's claim):

- `1`: PUBLISH on the one channel keys.DONE_CHANNEL. One subscription per front door process (a
  single Redis, or a cluster whose nodes are not all Redis 7: there PUBLISH goes to every node over
  the cluster bus, so its cost grows with the cluster; any node serves the subscription).
- `s`: SPUBLISH (sharded pub/sub, Redis 7.0+) on the execution's own channel keys.done_channel(tag),
  in the execution's slot: the message stays in the shard that owns the execution. Chosen at start
  when the state is a cluster and every node reports Redis 7.0 or later. Each waited-on execution is
  subscribed (SSUBSCRIBE) on a plain connection to the node owning its slot, one connection per node,
  and unsubscribed when its last waiter leaves.

Whatever goes wrong with a subscription (the node failed over, the slot moved, the connection broke),
the waiters concerned are woken: they read the execution again and subscribe anew (to the new owner),
and until a subscription holds they poll every POLL_SECONDS. A read that fails while waiting is tried
again until the wait's deadline, which then answers with the last state read: a long poll answers
when the execution ends or at its timeout, never with an error, through a failover.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, RedisClusterException, RedisError

from common import keys
from common.interpreter import TERMINAL
from common.redisclients import is_cluster

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 10.0  # longest a front door's start waits for the subscription
STOP_SECONDS = 3.0  # longest closing it may take
POLL_SECONDS = 0.5  # how often a waiter without a live subscription reads the execution again
SUBSCRIBE_SECONDS = 2.0  # longest a waiter waits for its SSUBSCRIBE to be confirmed before polling instead
SHARDED_MIN_VERSION = (7, 0)
PING_SECONDS = 5.0  # an idle subscription PINGs its node this often; 3 unanswered: the node is given up

READ_ERRORS = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)

Fields = dict[str, str]


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


async def cluster_supports_sharded(cluster: Any) -> bool:
    """Whether every node of `cluster` (an asyncio RedisCluster) reports Redis 7.0 or later."""
    answers = await cluster.info("server", target_nodes=cluster.ALL_NODES)
    infos = answers.values() if isinstance(answers, dict) and "redis_version" not in answers else [answers]
    versions = [_version(str(info.get("redis_version", "0"))) for info in infos]
    return bool(versions) and all(v >= SHARDED_MIN_VERSION for v in versions)


class SlotMoved(Exception):
    """An SSUBSCRIBE answered MOVED/ASK: the slot is served elsewhere now (the connection is fine)."""


class _Shard:
    """One node's sharded subscriptions: a plain asyncio connection (the cluster client has no usable
    pub/sub everywhere) and the task that reads its messages."""

    def __init__(self, owner: EndWaiters, name: str, client: aioredis.Redis) -> None:
        self.owner = owner
        self.name = name
        self.client = client
        self.pubsub = client.pubsub()
        self.confirms: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self.channels: set[str] = set()
        self.task: asyncio.Task[None] | None = None
        self.dead = False

    async def subscribe(self, channel: str) -> None:
        """SSUBSCRIBE and wait for the server's confirmation (raises on any failure)."""
        if self.dead:
            raise ConnectionError(f"subscription connection to {self.name} is closed")
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.confirms[channel].append(confirmed)
        self.channels.add(channel)
        await self.pubsub.execute_command("SSUBSCRIBE", channel)
        if self.task is None:
            self.task = asyncio.create_task(self._read())
        await confirmed

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if not self.dead:
            with contextlib.suppress(*READ_ERRORS):
                await asyncio.wait_for(self.pubsub.execute_command("SUNSUBSCRIBE", channel), STOP_SECONDS)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    await self._dispatch()
                except (MovedError, AskError) as exc:
                    # An SSUBSCRIBE that reached this node after its slot moved (a stale slot table): the
                    # connection is fine; the channels of that slot go, their waiters read again (which
                    # teaches the cluster client the new owner) and subscribe there.
                    self._moved(int(exc.slot_id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: drop this connection, its waiters resubscribe
            logger.info("sharded end-of-execution subscription to %s lost: %s", self.name, exc)
            self.close_now(exc)

    def _moved(self, slot: int) -> None:
        for channel in [c for c in self.channels if key_slot(c.encode()) == slot]:
            self.channels.discard(channel)
            for fut in self.confirms.pop(channel, ()):
                if not fut.done():
                    fut.set_exception(SlotMoved(slot))
            self.owner._wake(keys.tag_of_done_channel(channel))

    async def _dispatch(self) -> None:
        async for response in _responses(self.pubsub, self.name):
            kind = _text(response[0])
            channel = _text(response[1])
            if kind == "smessage":
                self.owner._wake(_text(response[2]))
            elif kind == "ssubscribe":
                for fut in self.confirms.pop(channel, ()):
                    if not fut.done():
                        fut.set_result(None)
            elif kind == "sunsubscribe" and channel in self.channels:
                # The server dropped it (the slot moved): its waiters read again and resubscribe.
                self.channels.discard(channel)
                self.owner._wake(keys.tag_of_done_channel(channel))

    def close_now(self, exc: BaseException) -> None:
        """Forget this connection: fail its pending confirmations, wake its waiters, close it in the background."""
        if self.dead:
            return
        self.dead = True
        if self.owner._shards.get(self.name) is self:
            del self.owner._shards[self.name]
        for futs in self.confirms.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(ConnectionError(str(exc)))
        self.confirms.clear()
        for channel in list(self.channels):
            self.owner._wake(keys.tag_of_done_channel(channel))
        self.channels.clear()
        self.owner._background(self.aclose())

    async def aclose(self) -> None:
        self.dead = True
        current = asyncio.current_task()
        if self.task is not None and self.task is not current:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, STOP_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pubsub.aclose(), STOP_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.aclose(), STOP_SECONDS)


async def _responses(pubsub: Any, name: str) -> AsyncIterator[list[Any]]:
    """The raw replies a subscribed connection reads ([kind, channel, data...]). When idle it PINGs the
    server every PING_SECONDS and raises ConnectionError once nothing came back for three of them: a
    node that stopped answering (frozen, cut off) must not keep waiters asleep after its replica took over."""
    loop = asyncio.get_running_loop()
    seen = loop.time()
    while True:
        response = await pubsub.parse_response(block=False, timeout=PING_SECONDS)
        if response is None:
            if loop.time() - seen > 3 * PING_SECONDS:
                raise ConnectionError(f"{name} answered nothing for {3 * PING_SECONDS:.0f} s")
            await asyncio.wait_for(pubsub.execute_command("PING"), PING_SECONDS)
            continue
        seen = loop.time()
        if isinstance(response, list) and len(response) >= 2:
            yield response


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EndWaiters:
    """Futures resolved when an execution (by tag) ends; fed by commit.lua's PUBLISH or SPUBLISH."""

    def __init__(self, redis: Any, node_client: Callable[[str, int], aioredis.Redis] | None = None) -> None:
        self.redis = redis
        self.cluster = is_cluster(redis)
        # How to reach one node of the cluster (with the cluster's credentials and TLS).
        self._node_client = node_client or (lambda host, port: aioredis.Redis(host=host, port=port))
        self.mark = "1"  # the record's watch mark this process asks for: '1' PUBLISH, 's' SPUBLISH
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._shards: dict[str, _Shard] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_node = 0
        self._draining = False

    @property
    def sharded(self) -> bool:
        return self.mark == "s"

    async def start(self) -> None:
        """Choose the pub/sub flavour; for the one-channel flavour, subscribe and begin dispatching.
        Returns once the subscription is live, or after STARTUP_SECONDS (long polls then poll until it is)."""
        if self.cluster:
            try:
                if await asyncio.wait_for(cluster_supports_sharded(self.redis), STARTUP_SECONDS):
                    self.mark = "s"
            except Exception as exc:  # noqa: BLE001 - cluster unreachable at start: the one-channel flavour works everywhere
                logger.warning("could not ask the cluster's nodes for their versions (%s): PUBLISH for ends", exc)
            logger.info("ends of executions: %s", "sharded pub/sub (SPUBLISH)" if self.sharded else "PUBLISH")
        if self.sharded:
            return
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), STARTUP_SECONDS)

    async def stop(self) -> None:
        """Cancel the listeners (bounded: an unresponsive connection cannot hold a shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, STOP_SECONDS)
        shards = list(self._shards.values())
        self._shards.clear()
        await asyncio.gather(*(shard.aclose() for shard in shards), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    def _background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the one-channel flavour ------------------------------------------------------------------

    async def _broadcast_client(self) -> tuple[Any, Any]:
        """The client to SUBSCRIBE on: the state client itself, or on a cluster a plain connection to
        one of its nodes (the next one at each reconnection)."""
        if not self.cluster:
            return self.redis, None
        await self.redis.initialize()
        nodes = self.redis.get_nodes()
        node = nodes[self._next_node % len(nodes)]
        self._next_node += 1
        client = self._node_client(node.host, node.port)
        return client, client

    async def _run(self) -> None:
        lost = False  # said once when the subscription is lost, once when it is back (not every retry)
        while True:
            pubsub = None
            own = None
            try:
                client, own = await self._broadcast_client()
                pubsub = client.pubsub()
                await pubsub.subscribe(keys.DONE_CHANNEL)
                self._ready.set()
                if lost:
                    lost = False
                    logger.warning("end-of-execution subscription is back")
                async for response in _responses(pubsub, "the end-of-execution channel's node"):
                    if _text(response[0]) == "message":
                        self._wake(_text(response[2]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - connection lost: waiters fall back to their own re-read on timeout
                self._ready.clear()  # waiters registering meanwhile poll
                if not lost:
                    lost = True
                    logger.warning("end-of-execution subscription lost, reconnecting every 0.5 s: %s", exc)
                self._wake_all()
                await asyncio.sleep(POLL_SECONDS)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pubsub.aclose(), STOP_SECONDS)
                if own is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(own.aclose(), STOP_SECONDS)

    # -- the sharded flavour ----------------------------------------------------------------------

    def _shard_for(self, channel: str) -> _Shard:
        node = self.redis.get_node_from_key(channel)
        shard = self._shards.get(node.name)
        if shard is None:
            shard = _Shard(self, node.name, self._node_client(node.host, node.port))
            self._shards[node.name] = shard
        return shard

    async def _ssubscribe(self, tag: str, within: float) -> bool:
        """Subscribe to `tag`'s channel on the node owning its slot; False if that failed in time."""
        channel = keys.done_channel(tag)
        shard: _Shard | None = None
        try:
            shard = self._shard_for(channel)
            await asyncio.wait_for(shard.subscribe(channel), max(0.05, min(within, SUBSCRIBE_SECONDS)))
            return True
        except asyncio.CancelledError:
            raise
        except SlotMoved:
            return False  # the waiter reads again (the cluster client learns the new owner) and subscribes there
        except Exception as exc:  # noqa: BLE001 - a node down, a slow node: poll instead
            logger.debug("SSUBSCRIBE %s failed: %s", channel, exc)
            if shard is not None:
                shard.close_now(exc)
            return False

    def _unsubscribe_later(self, tag: str) -> None:
        channel = keys.done_channel(tag)
        for shard in list(self._shards.values()):
            if channel in shard.channels:

                async def unsubscribe(shard: _Shard = shard) -> None:
                    if not self._waiters.get(tag):  # nobody registered again meanwhile
                        await shard.unsubscribe(channel)

                self._background(unsubscribe())

    # -- waiters ----------------------------------------------------------------------------------

    def _wake(self, tag: str) -> None:
        for fut in self._waiters.pop(tag, ()):
            if not fut.done():
                fut.set_result(None)

    def _wake_all(self) -> None:
        for tag in list(self._waiters):
            self._wake(tag)

    def wake_all(self) -> None:
        """End every pending wait now (the front door is draining): each long poll answers with the current state,
        and one that begins from now on does not wait."""
        self._draining = True
        self._wake_all()

    @contextlib.asynccontextmanager
    async def register(self, tag: str, within: float = SUBSCRIBE_SECONDS) -> AsyncIterator[asyncio.Future[None]]:
        """Register interest in `tag` ending; yields a future to await (with a timeout). Once this
        returns, an end published from then on resolves the future; without a live subscription the
        future resolves after POLL_SECONDS instead (the caller reads again). `within`: longest the
        subscription may take."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        first = not self._waiters.get(tag)
        self._waiters[tag].add(fut)
        try:
            if self.sharded:
                subscribed = await self._ssubscribe(tag, within) if first else self._subscribed(tag)
                if not subscribed:
                    loop.call_later(POLL_SECONDS, _resolve, fut)
            elif not self._ready.is_set() or (self._task is not None and self._task.done()):
                loop.call_later(POLL_SECONDS, _resolve, fut)
            yield fut
        finally:
            waiting = self._waiters.get(tag)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._waiters[tag]
            if self.sharded and not self._waiters.get(tag):
                self._unsubscribe_later(tag)

    def _subscribed(self, tag: str) -> bool:
        channel = keys.done_channel(tag)
        return any(channel in shard.channels and not shard.confirms.get(channel) for shard in self._shards.values())

    async def until_end(
        self, tag: str, read: Callable[[bool], Awaitable[Fields | None]], timeout: float, fields: Fields | None = None
    ) -> Fields | None:
        """The execution's fields once it has ended, or as last read when `timeout` seconds have passed.

        `read(watch)` reads the execution (with watch, marking it so that its end is published). A
        read that fails is tried again every POLL_SECONDS until the deadline; with no read ever
        answered the last error is raised. `fields`: what the caller already read, if anything.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0 or self._draining:
                with contextlib.suppress(*READ_ERRORS):
                    fresh = await read(False)
                    return fresh if fresh is not None else fields
                return fields
            async with self.register(tag, left) as ended:
                try:
                    # Read after registering: an end published before the registration is seen here.
                    fresh = await read(True)
                except READ_ERRORS as exc:
                    if fields is None and loop.time() >= deadline:
                        raise
                    logger.debug("long poll of %s: read failed, trying again: %s", tag, exc)
                    if not ended.done():
                        loop.call_later(POLL_SECONDS, _resolve, ended)
                else:
                    if fresh is None or fresh["status"] in TERMINAL:
                        return fresh
                    fields = fresh
                left = deadline - loop.time()
                if left > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(ended, timeout=left)
            # Woken: the end was published, or the subscription was lost (then read and wait again).


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
