"""The drive hand-off: batched LPUSHes a real Celery consumer understands, and a failed push loses nothing."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import redis
import redis.asyncio as aioredis

from api.handoff import DrivePublisher
from common.taskmsg import DRIVE_TASK


async def test_one_push_per_loop_iteration_in_arrival_order(redis_server: str, r: redis.Redis) -> None:
    client = aioredis.from_url(redis_server)
    publisher = DrivePublisher(client, "q")
    await asyncio.gather(*(publisher.publish(f"tag{i}") for i in range(5)))
    raw = r.lrange("q", 0, -1)
    assert len(raw) == 5
    popped = [json.loads(m) for m in reversed(raw)]  # the consumer pops from the right
    assert [m["headers"]["task"] for m in popped] == [DRIVE_TASK] * 5
    import base64

    args = [json.loads(base64.b64decode(m["body"]))[0][0] for m in popped]
    assert args == [f"tag{i}" for i in range(5)]
    await client.aclose()


async def test_a_failed_push_is_logged_and_callers_still_answer(caplog: Any) -> None:
    class Broken:
        async def lpush(self, *args: Any) -> None:
            raise redis.ConnectionError("broker down")

    publisher = DrivePublisher(Broken(), "q")
    await publisher.publish("tag")  # does not raise: the claim stands and the safety net re-drives it
    assert "safety net will re-drive" in caplog.text
