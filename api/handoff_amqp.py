"""Publishing drive messages to RabbitMQ from the event loop (OPENFNF_BROKER_URL=amqp://...).

The same batching as the Redis hand-off (api/handoff.py: the drives requested in one loop iteration
become as few messages as OPENFNF_DRIVE_BATCH allows), published with aio-pika on one robust
connection whose channel has publisher confirms on: a caller of `publish` is answered only once
RabbitMQ has confirmed the message carrying its execution (taken by the durable quorum queue), or
once publishing failed or took longer than `timeout`.

The gap is covered either way. StartExecution writes the execution's safety-net wake-up before its
claim, in the same pipeline (common/claims.py), so an execution whose drive was never confirmed (the
broker down, the front door killed between the claim and the confirm) is re-driven by the timers
after OPENFNF_WAKE_AFTER_MS; a drive published twice is harmless (the driver's lease and the inbox).
tests/e2e/test_rabbitmq_broker.py kills a front door at that point (fault `api.before_broker_confirm`).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from api.handoff import DrivePublisher
from common.brokers import QUORUM, amqp_parts
from common.faults import fault_point
from common.settings import Settings

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0  # a start waits this long for RabbitMQ's confirm, then the safety net owns the drive


class AmqpDrivePublisher(DrivePublisher):
    """DrivePublisher onto a RabbitMQ queue, with publisher confirms, never blocking the loop."""

    def __init__(self, settings: Settings, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        super().__init__(None, settings.drive_queue, settings.drive_batch)
        self.settings = settings
        self.url = settings.effective_broker_url
        self.timeout = timeout
        self._connection: Any = None
        self._channel: Any = None
        self._connecting = asyncio.Lock()

    async def _ready_channel(self) -> Any:
        """The confirming channel, connecting (once, by one caller) if there is none yet."""
        if self._channel is not None:
            return self._channel
        async with self._connecting:
            if self._channel is None:
                import aio_pika

                # A robust connection reconnects by itself and declares the queue again afterwards.
                connection = await aio_pika.connect_robust(self.url.replace("pyamqp://", "amqp://", 1), timeout=self.timeout)
                try:
                    channel = await connection.channel(publisher_confirms=True)
                    await channel.declare_queue(self.queue, durable=True, arguments=dict(QUORUM))
                except BaseException:
                    await connection.close()
                    raise
                self._connection, self._channel = connection, channel
        return self._channel

    async def start(self) -> None:
        """Connect now if RabbitMQ answers (a front door still starts when it does not: /readyz says so)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._ready_channel()
        except Exception as exc:  # noqa: BLE001 - retried by the first publish
            logger.warning("RabbitMQ is not reachable yet (%s); drives wait for the safety net until it is", exc)

    async def _push(self, messages: list[str]) -> None:
        import aio_pika

        fault_point(self.settings, "api.before_broker_confirm")  # tests: killed after the claim, before the confirm
        async with asyncio.timeout(self.timeout):
            channel = await self._ready_channel()
            exchange = channel.default_exchange
            sends = []
            for raw in messages:
                body, headers, props = amqp_parts(raw)
                message = aio_pika.Message(
                    body,
                    headers=headers,
                    content_type=props["content_type"],
                    content_encoding=props["content_encoding"],
                    correlation_id=props["correlation_id"],
                    priority=props["priority"],
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                sends.append(exchange.publish(message, routing_key=self.queue))
            await asyncio.gather(*sends)  # each returns once RabbitMQ confirmed it (or raises)

    async def ping(self) -> bool:
        """For /readyz: whether the connection to RabbitMQ is up."""
        channel = await self._ready_channel()
        if channel.is_closed or self._connection is None or self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        return True

    async def close(self) -> None:
        """Close the connection (publishes still in flight fail; the safety net has their executions)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await connection.close()
