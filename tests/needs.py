"""What a test needs from the machine beyond Python (a browser, rabbitmq-server, valgrind): without it the
test FAILS under CI=true (`.ci/run` installs each one) and is skipped elsewhere, saying how to get it."""
from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    """Fail under CI=true, else skip, with `message` (what is missing and how to install it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
