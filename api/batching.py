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
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ResponseError

from common.redisclients import is_cluster
from common.scripts import Scripts

logger = logging.getLogger(__name__)

Stack = list[tuple[Any, Any]]  # redis-py's pipeline command stack: (args, options) per command
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
    """Coalesces the pipelines callers build in one loop iteration into one round trip."""

    def __init__(self, client: Any, scripts: Scripts, timeout: float | None = 5.0, max_in_flight: int = 16) -> None:
        self.client = client  # redis.asyncio client (socket_timeout=None: the batch carries the timeout)
        self.scripts = scripts  # registered on any client of the same server: reloads after NOSCRIPT
        self.timeout = timeout
        # Batches waiting for Redis at once (each holds a connection); beyond that the next batch waits
        # for one to finish and takes everything queued meanwhile (a slow Redis gets bigger batches).
        self.max_in_flight = max_in_flight
        self._queued: list[tuple[Stack, asyncio.Future[list[Any]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._cluster = is_cluster(client)

    async def pipeline(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues, batched with this iteration's others; their answers.

        On a Redis Cluster each call is its own pipeline, which redis-py groups per node (one round
        trip per node the commands reach, sent concurrently)."""
        if self._cluster:
            async with asyncio.timeout(self.timeout):
                return await self.scripts.pipeline(build)
        pipe = self.client.pipeline(transaction=False)
        build(pipe)
        stack: Stack = list(pipe.command_stack)
        if not stack:
            return []
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Any]] = loop.create_future()
        self._queued.append((stack, answer))
        if len(self._queued) == 1:
            loop.call_soon(self._send)  # after every callback already ready in this iteration
        results = await answer
        return await self.scripts.settle([args for args, _ in stack], results)

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

    async def _run(self, batch: list[tuple[Stack, asyncio.Future[list[Any]]]]) -> None:
        commands = [command for stack, _ in batch for command in stack]
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._execute(commands)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure, raised there
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are its callers
            for _, answer in batch:
                answer.cancel()
            raise
        at = 0
        for stack, answer in batch:
            if not answer.done():  # its caller may have been cancelled meanwhile
                answer.set_result(results[at : at + len(stack)])
            at += len(stack)

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
