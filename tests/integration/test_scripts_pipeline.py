"""Scripts.pipeline after the server lost its scripts: only the failed script calls run again."""
from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from common import keys
from common.scripts import Scripts


def _build(scripts: Scripts) -> Any:
    tag = keys.execution_tag("fid", "e")

    def build(pipe: Any) -> None:
        pipe.incr("counter")
        scripts.queue(pipe, "claim", [keys.execution(tag), keys.inbox(tag)], ["{}", 0, "status", "Running"])
        pipe.incr("counter")

    return build


def test_sync_pipeline_reruns_only_the_scripts(r: redis.Redis) -> None:
    scripts = Scripts(r)
    r.script_flush()
    results = scripts.pipeline_sync(_build(scripts))
    assert results == [1, [1], 2]
    assert r.get("counter") == b"2"  # not 4: the INCRs ran once


async def test_async_pipeline_reruns_only_the_scripts(redis_server: str, r: redis.Redis) -> None:
    client = aioredis.from_url(redis_server)
    scripts = Scripts(client)
    r.script_flush()
    assert await scripts.pipeline(_build(scripts)) == [1, [1], 2]
    assert r.get("counter") == b"2"
    await client.aclose()


def test_other_errors_are_raised(r: redis.Redis) -> None:
    scripts = Scripts(r)
    r.set("text", "x")
    with pytest.raises(redis.ResponseError):
        scripts.pipeline_sync(lambda pipe: pipe.incr("text"))


async def test_a_script_queued_through_another_scripts_instance_is_rerun_too(redis_server: str, r: redis.Redis) -> None:
    """The front door's Store queues its claim through its own Scripts onto a pipeline its batcher's
    Scripts builds: after the server lost its scripts (a failed-over Redis 7 replica has none) the
    claim still runs again, instead of a KeyError (a 500)."""
    client = aioredis.from_url(redis_server)
    builder, other = Scripts(client), Scripts(client)
    r.script_flush()
    assert await builder.pipeline(_build(other)) == [1, [1], 2]
    assert r.get("counter") == b"2"
    await client.aclose()
