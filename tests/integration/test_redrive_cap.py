"""RedriveExecution counts against the running-executions cap like StartExecution (issue 7's cap, issue 18)."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from api.throttle import Limiter
from common import keys
from common.errors import ResourceThrottled
from tests.integration.test_gcra_limiter import KEY, admitted, client, settings

__all__ = ["client"]  # the fixture, used by name


async def test_a_redrive_is_refused_at_the_running_cap(redis_server: str, r: redis.Redis, client: Any) -> None:
    limiter = Limiter(client, settings(redis_server, max_running_executions=2, throttle_refresh_ms=600_000))
    await limiter.start()
    try:
        assert await admitted(limiter, "RedriveExecution") == "ok"
        r.set(keys.running(KEY.account), 2)
        with pytest.raises(ResourceThrottled) as refused:
            await limiter.admit("RedriveExecution", KEY, {})
        assert "has 2 running executions, the limit is 2" in refused.value.message
    finally:
        await limiter.stop()
