"""One Redis pipeline per event-loop iteration for the front door's hot path (issue 9).

Every StartExecution makes two pipelined round trips (admission, then the claim). Under load many
requests reach the same step in one loop iteration; `PipelineBatcher.pipeline(build)` queues the
commands `build(pipe)` adds and sends everything queued in that iteration as one pipeline, on one
connection: one write and one read for all of them instead of one each. Each caller gets exactly
the answers of its own commands, in order, with the same meaning as `Scripts.pipeline`: commands
that met NOSCRIPT run again once the scripts are loaded, then the first error is raised.

Nothing becomes atomic that was not: a pipeline without MULTI never was, and each caller's
commands still run in the order it queued them. A batch that fails as a whole (the connection
drops, Redis does not answer within `timeout`) fails every caller in it, as each caller's own
pipeline would have failed.

The client should have no socket timeout of its own (redis-py arms one per command read and wraps
every write in a task): the batch has one, `timeout`, around the whole round trip.

On a Redis Cluster the batch is grouped by the node owning each command's slot: one write per node,
sent concurrently, and each node's answers read on its own connection (a node that does not answer
within `timeout` fails only the commands sent to it). A command answered MOVED, ASK, TRYAGAIN or
CLUSTERDOWN did not run, and one whose node could not be reached or dropped the connection before
answering may not have: those commands alone (never a command that answered) run again once, those
answered ASK on the importing node after an ASKING on the same connection, the others through one
redis-py cluster pipeline for the batch, which follows the redirections and re-learns the slots, as
a ClusterPipeline retries only the commands no node answered; callers with no such command get their
answers first. (A connection lost after the write may have run the commands already, as with any
pipeline; the single-server path retries its whole batch there.) A caller whose commands cannot be
grouped (a command over several slots, split by redis-py) runs its own cluster pipeline.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.redisclients import is_cluster
from common.scripts import Scripts

logger = logging.getLogger(__name__)

Stack = list[tuple[Any, Any]]  # redis-py's pipeline command stack: (args, options) per command
# A cluster's answers meaning the command did not run (MovedError is an AskError), or may not have (the
# connection to its node failed before it answered): run again, once, through redis-py's cluster pipeline.
_RUN_AGAIN = (AskError, TryAgainError, ClusterDownError, SlotNotCoveredError, RedisConnectionError)
_NOT_FOR_CALLBACKS = frozenset({"keys", NEVER_DECODE, EMPTY_RESPONSE})  # as redis-py's parse_response drops them

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py's own packing (pure Python, slower)
    _hiredis_pack = None  # type: ignore[assignment]


def _pack(conn: Any, commands: Stack) -> Any:
    """The bytes of `commands` as one write: hiredis packs in C, as redis-py's own sync client does
    (str as UTF-8, int with str(), float with repr(): what redis-py's Python encoder writes too)."""
    if _hiredis_pack is None:
        return conn.pack_commands([args for args, _ in commands])
    return b"".join([_hiredis_pack(args) for args, _ in commands])


class PipelineBatcher:
    """Coalesces the pipelines callers build in one loop iteration into one round trip (one per node on a cluster)."""

    def __init__(self, client: Any, scripts: Scripts, timeout: float | None = 5.0, max_in_flight: int = 16) -> None:
        self.client = client  # redis.asyncio client (socket_timeout=None: the batch carries the timeout)
        self.scripts = scripts  # registered on any client of the same server: reloads after NOSCRIPT
        self.timeout = timeout
        # Batches waiting for Redis at once (each holds a connection); beyond that the next batch waits
        # for one to finish and takes everything queued meanwhile (a slow Redis gets bigger batches).
        self.max_in_flight = max_in_flight
        self._queued: list[tuple[Stack, list[int], asyncio.Future[list[Any]]]] = []  # (commands, their slots on a cluster, answer)
        self._tasks: set[asyncio.Task[None]] = set()
        self._cluster = is_cluster(client)

    async def pipeline(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues, batched with this iteration's others; their answers."""
        pipe = self.client.pipeline(transaction=False)
        if self._cluster:
            return await self._cluster_pipeline(pipe, build)
        build(pipe)
        stack: Stack = list(pipe.command_stack)
        if not stack:
            return []
        results = await self._queue(stack, [])
        return await self.scripts.settle([args for args, _ in stack], results)

    def _queue(self, stack: Stack, slots: list[int]) -> asyncio.Future[list[Any]]:
        """Queue `stack` for this iteration's batch: the future of its answers (error replies in place)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Any]] = loop.create_future()
        self._queued.append((stack, slots, answer))
        if len(self._queued) == 1:
            loop.call_soon(self._send)  # after every callback already ready in this iteration
        return answer

    async def _cluster_pipeline(self, pipe: Any, build: Callable[[Any], object]) -> list[Any]:
        """`pipeline` on a cluster: the commands grouped per node with the other callers' ones; those
        redirected or cut off run again through redis-py's cluster pipeline (see the module docstring)."""
        stack: Stack = []
        queue = pipe.execute_command

        def record(*args: Any, **options: Any) -> Any:
            stack.append((args, options))
            return queue(*args, **options)  # queued there too: builders read len(pipe)

        pipe.execute_command = record  # redis-py's command methods all queue through it
        build(pipe)
        if not stack:
            return []
        await self.client.initialize()  # the slots learnt, or a refresh an error path asked for (else returns at once)
        try:
            if len(pipe) != len(stack):  # a command queued past execute_command (redis-py's split helpers)
                raise RedisClusterException("not one command per slot")
            slots = [await self.client._determine_slot(*args) for args, _ in stack]  # noqa: SLF001 - redis-py's routing
        except RedisClusterException:  # keys over several slots: redis-py's pipeline splits the commands itself
            async with asyncio.timeout(self.timeout):
                return await self.scripts.pipeline(build)
        return await self.scripts.settle([args for args, _ in stack], await self._queue(stack, slots))

    def _send(self) -> None:
        if not self._queued or len(self._tasks) >= self.max_in_flight:
            return  # nothing to send, or sent when a batch in flight finishes (_sent)
        batch, self._queued = self._queued, []
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)  # held until done (the loop keeps only weak references to tasks)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._send()  # what queued up while every slot was busy

    async def _run(self, batch: list[tuple[Stack, list[int], asyncio.Future[list[Any]]]]) -> None:
        commands = [command for stack, _, _ in batch for command in stack]
        try:
            if self._cluster:
                results = await self._execute_per_node(commands, [slot for _, slots, _ in batch for slot in slots])
            else:
                async with asyncio.timeout(self.timeout):
                    results = await self._execute(commands)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure, raised there
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are its callers
            for _, _, answer in batch:
                answer.cancel()
            raise
        at = 0
        redirected: list[tuple[Stack, list[Any], asyncio.Future[list[Any]]]] = []
        for stack, _, answer in batch:
            own = results[at : at + len(stack)]
            at += len(stack)
            if self._cluster and any(isinstance(result, _RUN_AGAIN) for result in own):
                redirected.append((stack, own, answer))
            elif not answer.done():  # its caller may have been cancelled meanwhile
                answer.set_result(own)
        if redirected:
            await self._run_again(redirected)

    async def _run_again(self, redirected: list[tuple[Stack, list[Any], asyncio.Future[list[Any]]]]) -> None:
        """The commands of a cluster batch that were redirected or cut off (those alone), once more: those
        answered ASK to their importing node (ASKING before each, in one write per node), then the rest
        through one redis-py cluster pipeline (it follows MOVED, waits out TRYAGAIN and CLUSTERDOWN,
        re-learns the slots after a connection error); then their callers' answers."""
        places = [(own, i, stack[i]) for stack, own, _ in redirected for i, result in enumerate(own) if isinstance(result, _RUN_AGAIN)]
        try:
            async with asyncio.timeout(self.timeout):
                await self._follow_ask(places)
                places = [place for place in places if isinstance(place[0][place[1]], _RUN_AGAIN)]
                if places:
                    pipe = self.client.pipeline(transaction=False)
                    for _, _, (args, options) in places:
                        pipe.execute_command(*args, **options)
                    for (own, i, _), result in zip(places, await pipe.execute(raise_on_error=False), strict=True):
                        own[i] = result
        except Exception as exc:  # noqa: BLE001 - raised in each of these callers
            for _, _, answer in redirected:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, _, answer in redirected:
                answer.cancel()
            raise
        for _, own, answer in redirected:
            if not answer.done():
                answer.set_result(own)

    async def _follow_ask(self, places: list[tuple[list[Any], int, tuple[Any, Any]]]) -> None:
        """Send each command answered ASK to the node it names, right after an ASKING on the same connection
        (redis-py's own client sends the two on connections taken apart, which concurrent callers can
        separate: the command then bounces until its redirections run out). Their answers in place; a
        node that fails leaves them ASK, for the cluster pipeline."""
        nodes: dict[str, tuple[Any, list[tuple[list[Any], int, tuple[Any, Any]]]]] = {}
        for place in places:
            error = place[0][place[1]]
            if type(error) is AskError and error.host:  # (a MovedError is an AskError too)
                node = self.client.get_node(host=error.host, port=error.port)
                if node is not None:  # a node not known yet is found by redis-py's pipeline
                    nodes.setdefault(node.name, (node, []))[1].append(place)
        asking: tuple[Any, Any] = (("ASKING",), {})
        sent = [self._node_round_trip(node, [c for _, _, asked in group for c in (asking, asked)]) for node, group in nodes.values()]
        for (_, group), answers in zip(nodes.values(), await asyncio.gather(*sent, return_exceptions=True), strict=True):
            if not isinstance(answers, BaseException):
                for (own, i, _), answer in zip(group, answers[1::2], strict=True):
                    own[i] = answer

    async def _execute_per_node(self, commands: Stack, slots: list[int]) -> list[Any]:
        """Send `commands` in one write per node owning their slots, concurrently, and read each node's
        answers: the answers in order, error replies and the errors of a node that failed in place."""
        results: list[Any] = [None] * len(commands)
        nodes: dict[str, tuple[Any, list[int]]] = {}
        for i, slot in enumerate(slots):
            try:
                node = self.client.nodes_manager.get_node_from_slot(slot)
            except SlotNotCoveredError as exc:  # run again through redis-py's pipeline, which waits for the cluster
                results[i] = exc
                continue
            nodes.setdefault(node.name, (node, []))[1].append(i)
        tasks = [
            asyncio.ensure_future(self._node_round_trip(node, [commands[i] for i in indexes]))
            for node, indexes in nodes.values()
        ]
        try:
            _, late = await asyncio.wait(tasks, timeout=self.timeout)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for task in late:  # a node that did not answer in time: its commands fail, the others' do not
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for task, (_, indexes) in zip(tasks, nodes.values(), strict=True):
            if task in late:
                answers: list[Any] = [RedisTimeoutError("the Redis Cluster node did not answer in time")] * len(indexes)
            elif task.exception() is not None:
                answers = [task.exception()] * len(indexes)
            else:
                answers = task.result()
            for i, answer in zip(indexes, answers, strict=True):
                results[i] = answer
        return results

    async def _node_round_trip(self, node: Any, commands: Stack) -> list[Any]:
        """One write of `commands` to a cluster node and their answers, read on one of its connections (with
        the cluster's reply callbacks; error replies in place, and after a lost connection its error for
        every command not answered)."""
        conn = node.acquire_connection()
        try:
            await conn.send_packed_command(_pack(conn, commands), check_health=False)
            results: list[Any] = []
            for args, options in commands:
                try:
                    results.append(await node.parse_response(conn, args[0], **options))
                except ResponseError as exc:
                    results.append(exc)
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    await conn.disconnect(nowait=True)
                    results.extend([exc] * (len(commands) - len(results)))
                    break
        except BaseException:
            await conn.disconnect(nowait=True)  # answers may be left unread: never reuse it
            raise
        finally:
            node.release(conn)
        return results

    async def _execute(self, commands: Stack) -> list[Any]:
        """Send `commands` in one write on one pooled connection and read their answers, as redis-py's
        pipeline does (reply callbacks applied, error replies returned in place, the whole retried
        by the client's Retry on a connection error), with the commands packed by hiredis when present."""
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            answers: list[Any] = await conn.retry.call_with_retry(
                lambda: self._send_and_read(conn, commands), lambda error: conn.disconnect(nowait=True)
            )
        except BaseException:
            await conn.disconnect(nowait=True)  # answers may be left unread: never reuse it
            raise
        finally:
            await pool.release(conn)
        return answers

    async def _send_and_read(self, conn: Any, commands: Stack) -> list[Any]:
        await conn.send_packed_command(_pack(conn, commands), check_health=False)
        callbacks = self.client.response_callbacks
        results: list[Any] = []
        for args, options in commands:
            try:
                if NEVER_DECODE in options:
                    response = await conn.read_response(disable_decoding=True)
                else:
                    response = await conn.read_response()
            except ResponseError as exc:
                results.append(options.get(EMPTY_RESPONSE, exc))
                continue
            callback = callbacks.get(args[0])
            if callback is not None:
                extra = {k: v for k, v in options.items() if k not in _NOT_FOR_CALLBACKS}
                response = callback(response, **extra)
                if inspect.isawaitable(response):
                    response = await response
            results.append(response)
        return results

    async def close(self) -> None:
        """Let the batches in flight finish (their callers are waiting for them), and those queued behind them."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)  # their done callbacks send what queued meanwhile
