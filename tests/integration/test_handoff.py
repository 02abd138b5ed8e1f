"""The drive hand-off: batched LPUSHes a real Celery consumer understands, and a failed push loses nothing."""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import redis
import redis.asyncio as aioredis

from api.handoff import DrivePublisher
from common.taskmsg import DRIVE_TASK


def _args(raw: list[bytes]) -> list[list[str]]:
    """Each message's task args, in the order the consumer pops them (from the right)."""
    popped = [json.loads(m) for m in reversed(raw)]
    assert [m["headers"]["task"] for m in popped] == [DRIVE_TASK] * len(popped)
    return [json.loads(base64.b64decode(m["body"]))[0] for m in popped]


async def test_one_push_per_loop_iteration_in_arrival_order(redis_server: str, r: redis.Redis) -> None:
    client = aioredis.from_url(redis_server)
    publisher = DrivePublisher(client, "q", per_message=2)
    await asyncio.gather(*(publisher.publish(f"tag{i}") for i in range(5)))
    # five executions, at most two per message, in arrival order
    assert _args(r.lrange("q", 0, -1)) == [["tag0", "tag1"], ["tag2", "tag3"], ["tag4"]]
    await client.aclose()


async def test_an_execution_published_twice_in_one_iteration_is_driven_once(redis_server: str, r: redis.Redis) -> None:
    client = aioredis.from_url(redis_server)
    publisher = DrivePublisher(client, "q")
    await asyncio.gather(publisher.publish("a"), publisher.publish("b"), publisher.publish("a"))
    assert _args(r.lrange("q", 0, -1)) == [["a", "b"]]
    await publisher.publish("a")  # a later iteration: a message of its own
    assert _args(r.lrange("q", 0, -1))[-1] == ["a"]
    await client.aclose()


async def test_a_failed_push_is_logged_and_callers_still_answer(caplog: Any) -> None:
    class Broken:
        async def lpush(self, *args: Any) -> None:
            raise redis.ConnectionError("broker down")

    publisher = DrivePublisher(Broken(), "q")
    await publisher.publish("tag")  # does not raise: the claim stands and the safety net re-drives it
    assert "safety net will re-drive" in caplog.text
