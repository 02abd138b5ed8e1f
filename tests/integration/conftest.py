"""Fixtures the worker-side integration tests share (the suite-wide ones are in tests/conftest.py)."""
from __future__ import annotations

import pytest

from common.settings import Settings


@pytest.fixture
def settings(redis_server: str) -> Settings:
    """Default settings on this test's redis-server, no environment file."""
    return Settings(_env_file=None, redis_url=redis_server)


@pytest.fixture
def published() -> list[str]:
    """What a runner under test published as drives (its publish_drive appends here)."""
    return []
