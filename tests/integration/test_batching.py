"""PipelineBatcher (api/batching.py) on the fixture's redis-server: one round trip per loop iteration, each caller its own answers."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from api.batching import PipelineBatcher, _pack
from common.redisurl import for_redis_py
from common.scripts import Scripts
from tests.integration.test_start_roundtrips import Counting


@pytest.fixture
async def hot(redis_server: str, r: redis.Redis) -> AsyncIterator[Any]:
    client = aioredis.from_url(for_redis_py(redis_server), socket_timeout=None)
    yield client
    await client.aclose()


async def test_callers_of_one_iteration_share_one_round_trip_and_get_their_own_answers(hot: Any, r: redis.Redis) -> None:
    batcher = PipelineBatcher(hot, Scripts(hot))

    def build(i: int) -> Any:
        def queue(pipe: Any) -> None:
            pipe.set(f"k{i}", i, nx=True)
            pipe.incr("shared")
            pipe.zadd("z", {f"m{i}": i + 0.5})
            pipe.hmget(f"h{i}", "a", "b")

        return queue

    r.set("k3", "taken")
    r.hset("h5", mapping={"a": "x"})
    assert await batcher.pipeline(lambda pipe: pipe.ping()) == [True]  # connected (its handshake is not counted)
    with Counting() as counted:
        answers = await asyncio.gather(*(batcher.pipeline(build(i)) for i in range(10)))
    assert counted.sent == 1
    for i, (was_set, _shared, added, fields) in enumerate(answers):
        assert was_set is (None if i == 3 else True)  # SET's reply callback applied, as in a redis-py pipeline
        assert added == 1
        assert fields == ([b"x", None] if i == 5 else [None, None])
    assert sorted(shared for _, shared, _, _ in answers) == list(range(1, 11))  # each INCR ran once, in order
    assert r.zscore("z", "m7") == 7.5  # floats written as redis-py writes them
    await batcher.close()


async def test_an_error_reply_fails_only_its_caller(hot: Any, r: redis.Redis) -> None:
    batcher = PipelineBatcher(hot, Scripts(hot))
    r.set("text", "not a hash")

    def bad(pipe: Any) -> None:
        pipe.incr("counted")
        pipe.hset("text", "f", "v")  # WRONGTYPE

    def good(pipe: Any) -> None:
        pipe.incr("counted")

    results = await asyncio.gather(batcher.pipeline(bad), batcher.pipeline(good), return_exceptions=True)
    assert isinstance(results[0], ResponseError) and "WRONGTYPE" in str(results[0])
    assert results[1] == [2]
    assert r.get("counted") == b"2"  # the failing caller's other command ran, once


async def test_scripts_the_server_lost_run_again_once_loaded(hot: Any, r: redis.Redis) -> None:
    scripts = Scripts(hot)
    batcher = PipelineBatcher(hot, scripts)
    r.script_flush()

    def build(pipe: Any) -> None:
        pipe.incr("before")
        scripts.queue(pipe, "release_if", ["zset"], ["member", "1"])  # returns 0: no such member

    assert await batcher.pipeline(build) == [1, 0]
    assert r.get("before") == b"1"  # the INCR ran once; only the script call ran again


async def test_a_batch_redis_does_not_answer_in_time_fails_its_callers_and_the_next_one_works(hot: Any, r: redis.Redis) -> None:
    batcher = PipelineBatcher(hot, Scripts(hot), timeout=0.2)
    assert await batcher.pipeline(lambda pipe: pipe.ping()) == [True]
    r.execute_command("CLIENT", "PAUSE", "1000", "ALL")
    results = await asyncio.gather(*(batcher.pipeline(lambda pipe: pipe.incr("paused")) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(x, TimeoutError) for x in results), results
    r.execute_command("CLIENT", "UNPAUSE")
    assert await batcher.pipeline(lambda pipe: pipe.get("nothing")) == [None]  # a fresh connection, answers in step


async def test_beyond_max_in_flight_the_next_batch_waits_and_takes_everything_queued(hot: Any, r: redis.Redis) -> None:
    batcher = PipelineBatcher(hot, Scripts(hot), max_in_flight=1)
    assert await batcher.pipeline(lambda pipe: pipe.ping()) == [True]
    with Counting() as counted:
        r.execute_command("CLIENT", "PAUSE", "300", "ALL")  # holds the first batch in flight
        first = asyncio.ensure_future(batcher.pipeline(lambda pipe: pipe.incr("n")))
        await asyncio.sleep(0.05)
        rest = []
        for _ in range(5):  # each in a later loop iteration, while the only slot is busy
            rest.append(asyncio.ensure_future(batcher.pipeline(lambda pipe: pipe.incr("n"))))
            await asyncio.sleep(0.01)
        assert await first == [1]
        assert [await x for x in rest] == [[2], [3], [4], [5], [6]]
    assert counted.sent == 2  # the five waited together for the slot
    await batcher.close()


def test_commands_are_packed_as_redis_py_packs_them(hot: Any) -> None:
    conn = hot.connection_pool.make_connection()
    commands = [
        (("ZADD", "z", 0.1, "m", 1e20, "n", 1 / 3, "o", 1e-7, "p"), {}),
        (("SET", "k", "é", "PX", 900_000), {}),
        (("EVALSHA", "a" * 40, 2, "fnf:x:{f/e}", b"raw\\r\\n", "", -5), {}),
    ]
    assert _pack(conn, commands) == b"".join(conn.pack_commands([args for args, _ in commands]))
