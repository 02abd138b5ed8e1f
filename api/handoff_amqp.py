"""Publishing drive messages to RabbitMQ from the event loop (OPENFNF_BROKER_URL=amqp://...).

The same DrivePublisher as on Redis (api/handoff.py: the drives requested in one loop iteration
become as few messages as OPENFNF_DRIVE_BATCH allows), with common/brokers.py AsyncAmqpQueues as its
broker: aio-pika on one robust connection whose channel has publisher confirms. A caller of
`publish` is answered only once RabbitMQ has confirmed the message carrying its execution (taken by
the durable quorum queue), or once publishing failed or took longer than the timeout (5 s).

The gap is covered either way. StartExecution writes the execution's safety-net wake-up before its
claim, in the same pipeline (common/claims.py), so an execution whose drive was never confirmed (the
broker down, the front door killed between the claim and the confirm) is re-driven by the timers
after OPENFNF_WAKE_AFTER_MS; a drive published twice is harmless (the driver's lease and the inbox).
tests/e2e/test_rabbitmq_broker.py kills a front door at that point (fault `api.before_broker_confirm`).
"""
from __future__ import annotations

from api.handoff import DrivePublisher
from common.brokers import AsyncAmqpQueues
from common.faults import fault_point
from common.settings import Settings


class AmqpDrivePublisher(DrivePublisher):
    """DrivePublisher onto a RabbitMQ queue, with publisher confirms, never blocking the loop."""

    def __init__(self, settings: Settings, broker: AsyncAmqpQueues) -> None:
        super().__init__(broker, settings.drive_queue, settings.drive_batch)
        self.settings = settings

    async def _push(self, messages: list[str]) -> None:
        fault_point(self.settings, "api.before_broker_confirm")  # tests: killed after the claim, before the confirm
        await self.broker.lpush(self.queue, *messages)
