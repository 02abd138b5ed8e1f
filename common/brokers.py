"""Which kind of broker OPENFNF_BROKER_URL names, and the few queue operations OpenFnF needs on it.

Two kinds: a Redis server (drives are LPUSHed onto kombu's lists directly, common/taskmsg.py) and
RabbitMQ (`amqp://`, `amqps://`, `pyamqp://`). Every publisher of drives and activities in a worker or
the timers (worker/dispatch.py, worker/activities.py, worker/timers.py) talks to its broker through
the three Redis list commands `lpush`, `rpush` and `llen`; `AmqpQueues` gives RabbitMQ those three,
so the same code publishes to either:

- `lpush(queue, *messages)`: publish at the tail, in order (kombu's Redis consumer pops from the
  right, so an LPUSH is served in argument order too), each confirmed by the broker before the call
  returns (publisher confirms), persistent, onto durable quorum queues;
- `rpush(queue, *messages)`: a Redis "hand back to the head" (serve these next). AMQP has no head
  to push to (quorum queues here have no priorities): they are published again at the tail, in the
  order the Redis list would have served them. They wait their turn once more; nothing is lost;
- `llen(queue)`: the broker's own count of ready messages (a passive queue.declare).

The messages are the Redis transport's JSON envelopes (common/taskmsg.py), unpacked here into an
AMQP body, headers and properties: what Celery's own AMQP publisher would send for the same task.

The Celery broker cannot live on a Redis Cluster (kombu's Redis transport speaks to one server):
`refuse_cluster_broker` stops a process at start-up when the settings would put it there.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import redis
from amqp.exceptions import NotFound

from common.redisurl import for_redis_py, same_redis
from common.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

BrokerKind = Literal["redis", "amqp"]
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+socket://", "socket://")
# Every queue OpenFnF uses on RabbitMQ: durable, replicated, messages kept on disk. Every client
# (front door, timers, workers) declares them with exactly these arguments, or RabbitMQ refuses
# the declaration (PRECONDITION_FAILED).
QUORUM = {"x-queue-type": "quorum"}


class BrokerConfigError(ValueError):
    """The broker settings cannot work (the message says why and what to set)."""


class BrokerUnavailable(redis.ConnectionError):
    """RabbitMQ did not take a message or answer a count: a redis-py ConnectionError, so every
    caller's handling of an unreachable Redis broker (the timers' retry loop, a task's failure)
    applies to RabbitMQ unchanged."""


def broker_kind(url: str) -> BrokerKind:
    """The kind of broker a URL names; BrokerConfigError for any other scheme."""
    if url.startswith(AMQP_SCHEMES):
        return "amqp"
    if url.startswith(REDIS_SCHEMES):
        return "redis"
    raise BrokerConfigError(
        f"OPENFNF_BROKER_URL {url.split('://', 1)[0]}://... is not supported: use redis://, rediss://, unix:// or amqp://, amqps://"
    )


def refuse_cluster_broker(settings: Settings) -> None:
    """Raise BrokerConfigError when the Celery broker would be a Redis Cluster: with
    OPENFNF_REDIS_CLUSTER=true the state is a cluster, so the broker must be another server."""
    kind = broker_kind(settings.effective_broker_url)
    if not settings.redis_cluster or kind == "amqp":
        return
    if settings.broker_url is None or same_redis(settings.broker_url, settings.redis_url):
        raise BrokerConfigError(
            "OPENFNF_REDIS_CLUSTER=true: the state is a Redis Cluster, and Celery's Redis transport cannot use "
            "a cluster as its broker. Set OPENFNF_BROKER_URL to a separate (non-cluster) Redis, redis://host:port/0, "
            "or to RabbitMQ, amqp://user:password@host:5672/vhost (docs/deploy.md, Scaling past one Redis)."
        )


PROBE_SECONDS = 2.0  # longest the start-up look at a Redis broker may take (unreachable: the process starts anyway)


def refuse_cluster_server(settings: Settings) -> None:
    """Raise BrokerConfigError when OPENFNF_BROKER_URL names a node of a Redis Cluster (asked at start
    with INFO cluster: `cluster_enabled:1`), whatever the state is. A broker that does not answer
    within PROBE_SECONDS is not judged: the process starts and kombu retries as usual."""
    url = settings.effective_broker_url
    if broker_kind(url) != "redis" or (settings.redis_cluster and same_redis(url, settings.redis_url)):
        return  # RabbitMQ; or the state cluster itself, refused by refuse_cluster_broker already
    try:
        client = redis.Redis.from_url(for_redis_py(url), socket_timeout=PROBE_SECONDS, socket_connect_timeout=PROBE_SECONDS)
        try:
            enabled = int(client.info("cluster").get("cluster_enabled", 0))
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return
    if enabled:
        raise BrokerConfigError(
            f"OPENFNF_BROKER_URL ({_safe(url)}) is a node of a Redis Cluster, and Celery's Redis transport cannot use "
            "a cluster as its broker. Point it at a separate (non-cluster) Redis, or at RabbitMQ, "
            "amqp://user:password@host:5672/vhost (docs/deploy.md, Scaling past one Redis)."
        )


def _safe(url: str) -> str:
    """A broker URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def amqp_parts(message: str | bytes) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """(body, headers, properties) of a Redis-transport envelope (common/taskmsg.py), as AMQP carries them."""
    envelope = json.loads(message)
    props = envelope["properties"]
    body = base64.b64decode(envelope["body"]) if props.get("body_encoding") == "base64" else envelope["body"].encode()
    properties = {
        "content_type": envelope["content-type"],
        "content_encoding": envelope["content-encoding"],
        "correlation_id": props.get("correlation_id"),
        "delivery_mode": 2,  # persistent
        "priority": props.get("priority", 0),
    }
    return body, dict(envelope["headers"]), properties


class AmqpQueues:
    """`lpush`, `rpush` and `llen` of a redis-py client, on RabbitMQ queues (sync, thread-safe).

    One connection per instance, opened on first use and again after a failure (the call that met
    the failure retries once on a new connection, then raises: callers treat it as a Redis error,
    and the safety net covers what was not published)."""

    def __init__(self, url: str, queues: list[str], timeout: float = 10.0) -> None:
        self.url = url
        self.queues = list(dict.fromkeys(queues))  # declared (quorum) on every new connection
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        self._channel: Any = None

    def _open(self) -> Any:
        from kombu.connection import Connection

        connection: Any = Connection  # kombu's API is untyped
        # A socket timeout on every read and write: a confirm that never comes (a half-dead connection)
        # fails the call after `timeout` instead of hanging the timers loop.
        options = {"confirm_publish": True, "read_timeout": self.timeout, "write_timeout": self.timeout}
        conn = connection(self.url, connect_timeout=self.timeout, transport_options=options)
        conn.connect()
        channel = conn.default_channel
        for queue in self.queues:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False, arguments=QUORUM)
        self._conn, self._channel = conn, channel
        return channel

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _call(self, what: Callable[[Any], T]) -> T:
        """`what(channel)` under the lock; on a failure once more on a new connection, then raised."""
        with self._lock:
            try:
                return what(self._channel or self._open())
            except Exception as exc:  # noqa: BLE001 - the connection may be gone: retried once below
                self._drop()
                if isinstance(exc, NotFound):
                    raise
                logger.info("broker connection lost (%s); reconnecting once", exc)
            try:
                return what(self._open())
            except Exception as exc:
                self._drop()
                raise BrokerUnavailable(f"RabbitMQ at {_safe(self.url)}: {exc}") from exc

    def _publish(self, queue: str, messages: list[str | bytes]) -> int:
        parts = [amqp_parts(m) for m in messages]

        def publish(channel: Any) -> int:
            for body, headers, properties in parts:
                # With confirm_publish, py-amqp waits for the broker's ack of each message.
                message = channel.prepare_message(
                    body, properties["priority"], properties["content_type"], properties["content_encoding"], headers,
                    {"correlation_id": properties["correlation_id"], "delivery_mode": properties["delivery_mode"]},
                )  # fmt: skip
                channel.basic_publish(message, exchange="", routing_key=queue)
            return len(parts)

        return self._call(publish)

    def lpush(self, queue: str, *messages: str | bytes) -> int:
        """Publish `messages` at the tail of `queue`, in order, each confirmed by the broker."""
        return self._publish(queue, list(messages))

    def rpush(self, queue: str, *messages: str | bytes) -> int:
        """Publish `messages` again: served in the order a Redis RPUSH would serve them (last first)."""
        return self._publish(queue, list(reversed(messages)))

    def llen(self, queue: str) -> int:
        """Messages ready in `queue` (not those delivered and unacknowledged), as RabbitMQ counts them."""
        try:
            return self._call(lambda channel: int(channel.queue_declare(queue=queue, passive=True).message_count))
        except NotFound:
            return 0  # not declared yet: nothing waits in it

    def ping(self) -> bool:
        """Whether the broker answers (a passive declare of the first queue)."""
        self.llen(self.queues[0])
        return True

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._drop()


class AsyncAmqpQueues:
    """`lpush` of a redis.asyncio client on RabbitMQ, for an event loop (the front door, the console):
    aio-pika on one robust connection (it reconnects by itself) whose channel has publisher confirms,
    so `lpush` returns once RabbitMQ has confirmed every message, or raises (a failure, or more than
    `timeout` seconds). Also `ping` (for /readyz) and `aclose`, as the Redis client has."""

    def __init__(self, url: str, queues: list[str], timeout: float = 5.0) -> None:
        self.url = url.replace("pyamqp://", "amqp://", 1)
        self.queues = list(dict.fromkeys(queues))  # declared (quorum) when connecting
        self.timeout = timeout
        self._connection: Any = None
        self._channel: Any = None
        self._connecting: asyncio.Lock | None = None

    async def _ready_channel(self) -> Any:
        """The confirming channel, connecting (once, by one caller) if there is none yet."""
        if self._channel is not None:
            return self._channel
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._channel is None:
                import aio_pika

                connection = await aio_pika.connect_robust(self.url, timeout=self.timeout)
                try:
                    channel = await connection.channel(publisher_confirms=True)
                    for queue in self.queues:  # declared again by the robust channel after a reconnect
                        await channel.declare_queue(queue, durable=True, arguments=dict(QUORUM))
                except BaseException:
                    await connection.close()
                    raise
                self._connection, self._channel = connection, channel
        return self._channel

    async def start(self) -> None:
        """Connect now if RabbitMQ answers (a process still starts when it does not; publishes then retry)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._ready_channel()
        except Exception as exc:  # noqa: BLE001 - retried by the first publish
            logger.warning("RabbitMQ at %s is not reachable yet: %s", _safe(self.url), exc)

    async def lpush(self, queue: str, *messages: str | bytes) -> int:
        """Publish `messages` onto `queue` (all at once, each confirmed); raises when any is not."""
        import aio_pika

        async with asyncio.timeout(self.timeout):
            channel = await self._ready_channel()
            sends = []
            for raw in messages:
                body, headers, props = amqp_parts(raw)
                message = aio_pika.Message(
                    body, headers=headers, content_type=props["content_type"], content_encoding=props["content_encoding"],
                    correlation_id=props["correlation_id"], priority=props["priority"], delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )  # fmt: skip
                sends.append(channel.default_exchange.publish(message, routing_key=queue))
            await asyncio.gather(*sends)  # each returns once RabbitMQ confirmed it (or raises)
        return len(messages)

    async def ping(self) -> bool:
        """Whether the connection to RabbitMQ is up (raises when it is not)."""
        channel = await self._ready_channel()
        if channel.is_closed or self._connection is None or self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        return True

    async def aclose(self) -> None:
        """Close the connection (publishes still in flight fail)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await connection.close()


def async_broker(settings: Settings, state: Any, **redis_options: Any) -> Any:
    """The broker client of an event loop: the redis.asyncio state client itself when the broker is the
    state Redis, another redis.asyncio client for another Redis, AsyncAmqpQueues for RabbitMQ (call
    its `start` to connect early)."""
    refuse_cluster_broker(settings)
    url = settings.effective_broker_url
    if broker_kind(url) == "amqp":
        return AsyncAmqpQueues(url, [settings.drive_queue, settings.activity_queue])
    import redis.asyncio as aioredis

    if same_redis(url, settings.redis_url):
        return state
    return aioredis.from_url(for_redis_py(url), **redis_options)


def sync_broker(settings: Settings, state: Any, **redis_options: Any) -> Any:
    """The broker client of a worker or timers process: the state client itself when the broker is
    the state Redis, another redis-py client for another Redis, AmqpQueues for RabbitMQ."""
    refuse_cluster_broker(settings)
    url = settings.effective_broker_url
    if broker_kind(url) == "amqp":
        timeout = float(redis_options.get("socket_timeout") or 10.0)
        return AmqpQueues(url, [settings.drive_queue, settings.activity_queue], timeout=timeout)
    if same_redis(url, settings.redis_url):
        return state
    return redis.Redis.from_url(for_redis_py(url), **redis_options)


def queue_lengths(broker: Any, queues: list[str]) -> list[int]:
    """Messages waiting in each queue, as the broker counts them (one pipeline on Redis)."""
    if isinstance(broker, AmqpQueues):
        return [broker.llen(queue) for queue in queues]
    pipe = broker.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    return [int(n) for n in pipe.execute()]
