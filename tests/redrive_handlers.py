"""Functions the redrive tests bind (tests/fixtures/functions/redrive.yaml): they count their calls in files.

The event says where: {"dir": a directory, "key": a name, "fail_until": n, "hold": bool}. Each call
appends a line to dir/key (O_APPEND: calls from several worker processes never mix lines); the first
`fail_until` calls raise FlakyError. With "hold", a call waits (up to a minute) for the file dir/go
first: the test decides when it may go on, so no test depends on timing.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

HOLD_LIMIT_SECONDS = 60.0


class FlakyError(Exception):
    """Raised by a counted call that is told to fail."""


def calls(directory: str | Path, key: str) -> int:
    """How many times `key` was called."""
    path = Path(directory) / key
    return len(path.read_text().splitlines()) if path.exists() else 0


def counted(event: bytes, context: Any) -> dict[str, Any]:
    """Count the call; fail the first `fail_until` calls; with `hold`, wait for dir/go after counting."""
    data = json.loads(event)
    directory, key = Path(data["dir"]), str(data["key"])
    fd = os.open(directory / key, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"call\n")
    finally:
        os.close(fd)
    n = calls(directory, key)
    if data.get("hold"):
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not (directory / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a function polling a file: the test process decides when it goes on
    if n <= int(data.get("fail_until", 0)):
        raise FlakyError(f"{key}: call {n} fails")
    return {"key": key, "calls": n}
