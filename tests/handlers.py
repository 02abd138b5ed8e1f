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
