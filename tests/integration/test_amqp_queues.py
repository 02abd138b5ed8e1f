"""common/brokers.py AmqpQueues on a real RabbitMQ: confirmed publishes in order, hand-backs, the
broker's own counts, and the safety net's backlog limit reading them (worker/timers.py)."""
from __future__ import annotations

import json
from collections.abc import Iterator

import amqp
import pytest
import redis

from common import keys
from common.brokers import AmqpQueues, queue_lengths
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK, DRIVE_TASK, drive_messages
from tests.rabbitmq import RabbitServer, start_rabbitmq


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def queues(rabbit: RabbitServer, request: pytest.FixtureRequest) -> Iterator[tuple[AmqpQueues, str, str]]:
    drives, activities = f"{request.node.name}.drives", f"{request.node.name}.activities"
    client = AmqpQueues(rabbit.url, [drives, activities])
    yield client, drives, activities
    client.close()


def take_all(rabbit: RabbitServer, queue: str) -> list[amqp.Message]:
    """Every ready message of `queue`, acknowledged, in the order the broker hands them out."""
    conn = amqp.Connection(f"127.0.0.1:{rabbit.port}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        out = []
        while (message := channel.basic_get(queue)) is not None:
            channel.basic_ack(message.delivery_tag)
            out.append(message)
        return out
    finally:
        conn.close()


def test_publishes_are_celery_messages_in_order_on_a_quorum_queue(rabbit: RabbitServer, queues: tuple[AmqpQueues, str, str]) -> None:
    client, drives, _ = queues
    assert client.lpush(drives, *drive_messages(["a", "b", "c"], drives, 2)) == 2
    assert client.llen(drives) == 2
    got = take_all(rabbit, drives)
    assert [json.loads(m.body)[0] for m in got] == [["a", "b"], ["c"]]
    assert all(m.headers["task"] == DRIVE_TASK and m.properties["delivery_mode"] == 2 for m in got)
    assert got[0].properties["content_type"] == "application/json"
    assert client.llen(drives) == 0


def test_a_hand_back_is_served_in_the_order_redis_would_serve_it(
    rabbit: RabbitServer, queues: tuple[AmqpQueues, str, str], r: redis.Redis
) -> None:
    from worker.activities import activity_messages

    client, _, activities = queues
    commands = [{"t": "RunActivity", "id": str(i)} for i in range(3)]
    messages = activity_messages("tag", commands, activities, 1)
    # ActivityRunner.hand_back's call: on Redis, RPUSH of the reversed list serves commands 0, 1, 2 next.
    client.rpush(activities, *reversed(messages))
    r.rpush("list", *reversed(messages))
    on_redis = [json.loads(r.rpop("list") or b"")["headers"]["id"] for _ in messages]
    got = take_all(rabbit, activities)
    assert [m.headers["id"] for m in got] == on_redis
    assert [json.loads(m.body)[0][1]["id"] for m in got] == ["0", "1", "2"]
    assert all(m.headers["task"] == ACTIVITY_TASK for m in got)


def test_an_undeclared_queue_counts_zero(queues: tuple[AmqpQueues, str, str]) -> None:
    client, drives, _ = queues
    assert client.llen("never.declared.anywhere") == 0
    assert queue_lengths(client, [drives, "never.declared.anywhere"]) == [0, 0]  # and the connection still works


def test_the_safety_net_holds_back_while_the_rabbitmq_queue_is_backlogged(
    rabbit: RabbitServer, queues: tuple[AmqpQueues, str, str], r: redis.Redis
) -> None:
    from worker.timers import Timers

    client, drives, activities = queues
    settings = Settings(_env_file=None, rescue_backlog_limit=2, wake_after_ms=1000, drive_queue=drives, activity_queue=activities)
    timers = Timers(r, client, settings)
    tag = keys.execution_tag("flow-id-1", "exec1")
    Scripts(r).claim(keys=keys.execution_keys(tag)[:2], args=[json.dumps({"t": "Started"}), 0, "status", "Running"])
    r.zadd(keys.wake_for(tag, 16), {tag: 0})
    client.lpush(drives, *drive_messages(["x", "y", "z"], drives, 1))  # a backlog of three queued drives
    assert timers.rescue(10_000) == 1
    assert client.llen(drives) == 3  # nothing more published
    assert r.zscore(keys.wake_for(tag, 16), tag) == 11_000  # still armed
    assert len(take_all(rabbit, drives)) == 3
    assert timers.rescue(20_000) == 1
    assert [json.loads(m.body)[0] for m in take_all(rabbit, drives)] == [[tag]]  # the queue is short again: re-driven


async def test_the_event_loop_client_publishes_confirmed_messages_in_order(rabbit: RabbitServer) -> None:
    """AsyncAmqpQueues (the front door's and the console's broker): lpush returns after the confirms."""
    from common.brokers import AsyncAmqpQueues, async_broker

    settings = Settings(_env_file=None, broker_url=rabbit.url, drive_queue="async.drives", activity_queue="async.activities")
    client = async_broker(settings, state=object())
    assert isinstance(client, AsyncAmqpQueues)
    try:
        await client.start()
        assert await client.ping()
        assert await client.lpush("async.drives", *drive_messages(["a", "b", "c"], "async.drives", 1)) == 3
        got = take_all(rabbit, "async.drives")  # confirmed: on the queue when lpush returned
        assert [json.loads(m.body)[0] for m in got] == [["a"], ["b"], ["c"]]
    finally:
        await client.aclose()
    state = object()
    assert async_broker(Settings(_env_file=None), state) is state  # no broker URL: the state Redis itself


def test_a_frozen_broker_fails_a_publish_instead_of_hanging_it(rabbit: RabbitServer) -> None:
    """The timers' loop must survive a RabbitMQ that stops answering: the call raises (a redis-py
    ConnectionError, which the loop already retries on) once the socket timeout passes."""
    import os
    import signal

    from common.brokers import BrokerUnavailable

    client = AmqpQueues(rabbit.url, ["frozen.drives"], timeout=1.0)
    pid = rabbit.os_pid()
    assert pid is not None
    try:
        assert client.llen("frozen.drives") == 0  # connected
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(BrokerUnavailable):
            client.lpush("frozen.drives", *drive_messages(["a"], "frozen.drives", 1))
        assert isinstance(BrokerUnavailable("x"), redis.ConnectionError)
    finally:
        os.kill(pid, signal.SIGCONT)
        client.close()
    assert client.lpush("frozen.drives", *drive_messages(["b"], "frozen.drives", 1)) == 1  # and it recovers


def test_the_queue_depth_metric_reads_rabbitmqs_counts(rabbit: RabbitServer, queues: tuple[AmqpQueues, str, str], r: redis.Redis) -> None:
    from worker.metrics import RedisDepthCollector

    client, drives, activities = queues
    client.lpush(drives, *drive_messages(["a", "b"], drives, 1))
    families = {f.name: f for f in RedisDepthCollector(r, client, [drives, activities]).collect()}
    depth = {s.labels["queue"]: s.value for s in families["openfnf_queue_depth"].samples}
    assert depth == {drives: 2.0, activities: 0.0}
