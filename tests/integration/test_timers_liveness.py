"""The timers loop and its liveness (issue 17): Redis away keeps `--check` passing (a restart would not
help), while any other error that lasts (a client that cannot follow the cluster) stops the heartbeat's
loop proof, so `timers --check` fails once it is older than heartbeat_stale_seconds."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from common.settings import Settings
from worker.timers import Timers


class Failing:
    """A state client whose every pipeline fails with `error`."""

    def __init__(self, inner: redis.Redis, error: Exception) -> None:
        self.inner, self.error = inner, error

    def register_script(self, text: str) -> Any:
        return self.inner.register_script(text)

    def pipeline(self, transaction: bool = True) -> Any:
        raise self.error


def _ticks(r: redis.Redis, error: Exception) -> int:
    settings = Settings(timers_poll_ms=10, _env_file=None)  # type: ignore[call-arg]
    timers = Timers(Failing(r, error), r, settings)
    ticks: list[float] = []
    timers.on_tick = lambda: ticks.append(time.monotonic())
    thread = threading.Thread(target=timers.run)
    thread.start()
    deadline = time.monotonic() + 5
    while timers.redis_ok and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.2)  # two more turns of the loop (0.5 s back-off each)
    timers.stopping = True
    thread.join(10)
    assert not thread.is_alive() and not timers.redis_ok
    return len(ticks)


@pytest.mark.parametrize("error", [IndexError("pop from an empty list"), redis.ResponseError("MOVED 1 127.0.0.1:1")])
def test_a_lasting_client_error_stops_the_loop_proof(r: redis.Redis, error: Exception) -> None:
    assert _ticks(r, error) == 0


def test_redis_away_keeps_the_loop_proof(r: redis.Redis) -> None:
    assert _ticks(r, redis.ConnectionError("Connection refused")) >= 2
