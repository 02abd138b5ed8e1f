"""common/redisurl.py: the two URL dialects and the one rule for the broker's client (common/brokers.py)."""
from __future__ import annotations

import pytest
import redis

from common import brokers
from common.redisurl import for_kombu, for_redis_py, same_redis
from common.settings import Settings


@pytest.mark.parametrize(
    ("redis_url", "broker_url", "same"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", True),
        ("unix:///tmp/r.sock", "redis+socket:///tmp/r.sock", True),  # the same server in kombu's dialect
        ("unix:///tmp/r.sock", "socket:///tmp/r.sock", True),
        ("redis+socket:///tmp/r.sock", "unix:///tmp/r.sock", True),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", False),  # another database
        ("redis://127.0.0.1:6379/0", "redis://broker:6379/0", False),
        ("unix:///tmp/r.sock", "redis+socket:///tmp/b.sock", False),
    ],
)
def test_the_broker_is_the_state_client_unless_its_url_names_another_redis(redis_url: str, broker_url: str, same: bool) -> None:
    assert same_redis(broker_url, redis_url) is same
    state = redis.Redis.from_url(for_redis_py(redis_url))
    broker = brokers.sync_broker(Settings(redis_url=redis_url, broker_url=broker_url, _env_file=None), state)  # connects lazily
    assert (broker is state) is same
    if not same:
        assert broker.connection_pool.connection_kwargs != state.connection_pool.connection_kwargs


def test_without_a_broker_url_the_broker_is_the_state_client() -> None:
    state = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    assert brokers.sync_broker(Settings(redis_url="redis://127.0.0.1:6379/0", _env_file=None), state) is state


def test_dialects_round_trip() -> None:
    assert for_kombu("unix:///tmp/r.sock") == "redis+socket:///tmp/r.sock"
    assert for_redis_py(for_kombu("unix:///tmp/r.sock")) == "unix:///tmp/r.sock"
    assert for_kombu("redis://h:1/2") == for_redis_py("redis://h:1/2") == "redis://h:1/2"
