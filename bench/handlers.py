"""The trivial function the fan-out benchmark calls, like Function Compute's Python runtime."""
from __future__ import annotations

from typing import Any


def noop(event: bytes, context: Any) -> dict[str, Any]:
    """Answer at once with a small object (the item's own JSON is not parsed)."""
    return {"ok": True}
