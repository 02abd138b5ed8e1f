"""Publishing drive messages to Celery from the event loop: batched LPUSHes, never a blocking call."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from common.taskmsg import drive_messages

logger = logging.getLogger(__name__)


class DrivePublisher:
    """Collects drive requests made in one loop iteration and pushes them in one command, as few
    messages as `per_message` allows (a worker drives each message's executions as one batch)."""

    def __init__(self, broker: Any, queue: str, per_message: int = 32) -> None:
        self.broker = broker  # redis.asyncio client of the broker
        self.queue = queue
        self.per_message = per_message
        self._pending: list[str] = []  # execution tags
        self._flushed: asyncio.Future[None] | None = None

    async def publish(self, tag: str) -> None:
        """Hand the execution `tag` to the workers; returns once the broker has the message."""
        self._pending.append(tag)
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))
        await asyncio.shield(self._flushed)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        done, self._flushed = self._flushed, None
        assert done is not None
        try:
            await self._push(drive_messages(batch, self.queue, self.per_message))
        except Exception as exc:  # noqa: BLE001 - the executions are claimed: the safety net re-drives them
            logger.warning("publishing %d drive(s) failed, the safety net will re-drive them: %s", len(batch), exc)
        done.set_result(None)  # callers answer either way: what they claimed is not lost

    async def _push(self, messages: list[str]) -> None:
        """Hand these messages to the broker (api/handoff_amqp.py does it for RabbitMQ)."""
        # kombu's consumer pops from the right, so LPUSH keeps arrival order.
        await self.broker.lpush(self.queue, *messages)
