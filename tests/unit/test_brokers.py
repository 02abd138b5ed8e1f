"""The broker-kind rule, the refusal of a Redis Cluster as the Celery broker, and the AMQP form of task messages."""
from __future__ import annotations

import base64
import json

import pytest

from common.brokers import QUORUM, BrokerConfigError, amqp_parts, broker_kind, refuse_cluster_broker
from common.settings import Settings
from common.taskmsg import DRIVE_TASK, drive_messages


@pytest.mark.parametrize(
    "url, kind",
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache:6380/1", "redis"),
        ("unix:///run/redis.sock", "redis"),
        ("redis+socket:///run/redis.sock", "redis"),
        ("amqp://guest:guest@rabbit:5672//", "amqp"),
        ("amqps://user:pw@rabbit:5671/vhost", "amqp"),
        ("pyamqp://rabbit//", "amqp"),
    ],
)
def test_broker_kind(url: str, kind: str) -> None:
    assert broker_kind(url) == kind


def test_an_unknown_broker_scheme_is_refused_by_name() -> None:
    with pytest.raises(BrokerConfigError, match=r"sqs://\.\.\. is not supported"):
        broker_kind("sqs://key:secret@")


@pytest.mark.parametrize(
    "cluster, broker, refused",
    [
        (False, None, False),  # one Redis for both, as today
        (True, None, True),  # the broker would default to the cluster
        (True, "redis://10.0.0.1:7000", True),  # named as the same URL as the state
        (True, "redis://broker:6379/0", False),  # a separate Redis
        (True, "amqp://guest:guest@rabbit:5672//", False),  # RabbitMQ
        (False, "amqp://guest:guest@rabbit:5672//", False),
    ],
)
def test_a_cluster_broker_is_refused_at_start(cluster: bool, broker: str | None, refused: bool) -> None:
    settings = Settings(_env_file=None, redis_url="redis://10.0.0.1:7000", redis_cluster=cluster, broker_url=broker)
    if refused:
        with pytest.raises(BrokerConfigError, match="cannot use a cluster as its broker. Set OPENFNF_BROKER_URL"):
            refuse_cluster_broker(settings)
    else:
        refuse_cluster_broker(settings)


def test_the_worker_refuses_a_cluster_broker_before_celery_starts() -> None:
    from worker.celeryapp import make_celery

    with pytest.raises(BrokerConfigError, match="OPENFNF_REDIS_CLUSTER=true"):
        make_celery(Settings(_env_file=None, redis_url="redis://10.0.0.1:7000", redis_cluster=True))


def test_amqp_parts_carry_what_celery_reads_from_a_redis_envelope() -> None:
    raw = drive_messages(["a", "b"], "openfnf.drives", 32)[0]
    envelope = json.loads(raw)
    body, headers, properties = amqp_parts(raw)
    assert body == base64.b64decode(envelope["body"])
    assert json.loads(body)[0] == ["a", "b"]
    assert headers["task"] == DRIVE_TASK and headers["id"] == envelope["headers"]["id"]
    assert properties == {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "correlation_id": envelope["properties"]["correlation_id"],
        "delivery_mode": 2,
        "priority": 0,
    }


def test_the_worker_consumes_quorum_queues_without_delayed_delivery_on_rabbitmq() -> None:
    from worker.celeryapp import AmqpConsumer, AmqpLoopTimer, make_celery

    settings = Settings(_env_file=None, broker_url="amqp://guest:guest@rabbit:5672//")
    app = make_celery(settings)
    queues = {q.name: q for q in app.conf.task_queues}
    assert set(queues) == {settings.drive_queue, settings.activity_queue}
    assert all(q.queue_arguments == QUORUM and q.durable for q in queues.values())
    assert app.conf.worker_consumer == "worker.celeryapp:AmqpConsumer"
    assert not any(step.endswith(":DelayedDelivery") for step in AmqpConsumer.Blueprint.default_steps)
    assert AmqpLoopTimer in app.steps["consumer"]
    assert app.conf.worker_enable_remote_control is False  # no exclusive pidbox queue per worker
    assert make_celery(Settings(_env_file=None)).conf.task_queues is None  # Redis: as before
