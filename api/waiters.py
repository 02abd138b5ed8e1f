"""DescribeExecution long-polls: one pub/sub subscription per process wakes every waiter of an execution."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from common import keys

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 10.0  # longest a front door's start waits for the subscription
STOP_SECONDS = 3.0  # longest closing it may take


class EndWaiters:
    """Futures resolved when an execution (by tag) ends; fed by commit.lua's PUBLISH."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Subscribe and begin dispatching; returns once the subscription is live, or after
        STARTUP_SECONDS (long polls then end on their own timeouts until it is)."""
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), STARTUP_SECONDS)

    async def stop(self) -> None:
        """Cancel the listener (bounded: an unresponsive connection cannot hold a shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, STOP_SECONDS)

    async def _run(self) -> None:
        lost = False  # said once when the subscription is lost, once when it is back (not every retry)
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.DONE_CHANNEL)
                self._ready.set()
                if lost:
                    lost = False
                    logger.warning("end-of-execution subscription is back")
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        self._wake(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - connection lost: waiters fall back to their own re-read on timeout
                if not lost:
                    lost = True
                    logger.warning("end-of-execution subscription lost, reconnecting every 0.5 s: %s", exc)
                self._wake_all()
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), STOP_SECONDS)

    def _wake(self, tag: str) -> None:
        for fut in self._waiters.pop(tag, ()):
            if not fut.done():
                fut.set_result(None)

    def _wake_all(self) -> None:
        for tag in list(self._waiters):
            self._wake(tag)

    def wake_all(self) -> None:
        """End every pending wait now (the front door is draining): each long poll answers with the current state."""
        self._wake_all()

    @contextlib.contextmanager
    def register(self, tag: str) -> Any:
        """Register interest in `tag` ending; yields a future to await (with a timeout)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[tag].add(fut)
        try:
            yield fut
        finally:
            waiting = self._waiters.get(tag)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._waiters[tag]
