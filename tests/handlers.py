"""Function handlers the tests bind in functions files (called like Function Compute's Python runtime)."""
from __future__ import annotations

import json
import time
from typing import Any


class BookFlightError(Exception):
    """A custom error; flows catch it by this class name."""


def echo(event: bytes, context: Any) -> dict[str, Any]:
    """Returns the event as a dict, plus what the context says."""
    return {"event": json.loads(event), "function": context.function.name, "service": context.service.name}


def json_text(event: bytes, context: Any) -> str:
    """Returns a JSON string, as FC functions often do."""
    return json.dumps({"book_flight": "success", "n": json.loads(event).get("n", 0)})


def plain_text(event: bytes, context: Any) -> bytes:
    """Returns bytes that are not JSON."""
    return b"hello there"


def a_list(event: bytes, context: Any) -> list[int]:
    """Returns a list."""
    return [1, 2, 3]


def fails(event: bytes, context: Any) -> None:
    """Raises a custom error."""
    raise BookFlightError("no seats left")


def slow(event: bytes, context: Any) -> dict[str, Any]:
    """Sleeps for the event's `seconds`."""
    time.sleep(float(json.loads(event).get("seconds", 5)))
    return {"slept": True}


def add(event: bytes, context: Any) -> dict[str, Any]:
    """Adds the event's a and b."""
    data = json.loads(event)
    return {"sum": data.get("a", 0) + data.get("b", 0)}


def _sdk() -> Any:
    """The official SDK on the service this worker belongs to (the env the test gave the worker)."""
    import os

    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(
        access_key_id=os.environ["OPENFNF_ACCESS_KEY_ID"], access_key_secret=os.environ["OPENFNF_ACCESS_KEY_SECRET"],
        endpoint=f"127.0.0.1:{os.environ['OPENFNF_PORT']}", protocol="http",
    ))  # fmt: skip


def _redis() -> Any:
    import os

    import redis

    return redis.Redis.from_url(os.environ["OPENFNF_REDIS_URL"])


def report_token(event: bytes, context: Any) -> dict[str, Any]:
    """The spec's callback example: the function reports its own task token as succeeded."""
    from alibabacloud_fnf20190315 import models

    data = json.loads(event)
    output = json.dumps({"approved": True, "for": data.get("order")})
    _sdk().report_task_succeeded(models.ReportTaskSucceededRequest(task_token=data["token"], output=output))
    return {"submitted": True}


def report_failure(event: bytes, context: Any) -> dict[str, Any]:
    """Reports its own task token as failed."""
    from alibabacloud_fnf20190315 import models

    data = json.loads(event)
    _sdk().report_task_failed(models.ReportTaskFailedRequest(task_token=data["token"], error="Rejected", cause="the reviewer said no"))
    return {"submitted": True}


def keep_token(event: bytes, context: Any) -> dict[str, Any]:
    """Hands the token to the test (a Redis list), which reports it later."""
    _redis().rpush("test:tokens", json.loads(event)["token"])
    return {}


def inflight(event: bytes, context: Any) -> dict[str, Any]:
    """Counts calls in flight at once (test:inflight, peak in test:peak) for MaxConcurrency checks."""
    r = _redis()
    now = r.incr("test:inflight")
    r.eval("if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end", 1, "test:peak", now)
    time.sleep(0.15)
    r.decr("test:inflight")
    return {"item": json.loads(event).get("item")}


def announce_and_sleep(event: bytes, context: Any) -> dict[str, Any]:
    """Says it started (test:running), then works for the event's `seconds`: a window to kill its worker in."""
    data = json.loads(event)
    r = _redis()
    r.incr("test:calls")  # counted before it announces itself: a kill right after still counts the call
    r.rpush("test:running", data.get("n", 0))
    time.sleep(float(data.get("seconds", 1)))
    return {"n": data.get("n", 0), "done": True}


def nested(event: bytes, context: Any) -> Any:
    """Returns lists nested the event's `depth` levels deep (a Python value, or JSON text with `as_text`)."""
    data = json.loads(event)
    depth = int(data.get("depth", 1))
    if data.get("as_text"):
        return "[" * depth + "1" + "]" * depth
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def not_json(event: bytes, context: Any) -> Any:
    """Returns what the event's `kind` names: a NaN, NaN as JSON text, an Infinity, a set."""
    kind = json.loads(event).get("kind")
    return {"nan": {"x": float("nan")}, "nan_text": '{"x": NaN}', "inf": [float("inf")], "set": {"s": {1, 2}}}[kind]


def exits_its_process(event: bytes, context: Any) -> None:
    """Ends the worker process running it at once (as a crash, a segfault or the OOM killer would)."""
    import os

    os._exit(3)
