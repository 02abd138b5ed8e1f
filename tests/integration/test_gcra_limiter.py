"""The front door's Limiter on a real redis-server: Redis round trips per request, refresh, chaos draws."""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import redis.asyncio.connection as aioconn

from api.credentials import AccessKey
from api.throttle import Limiter
from common import keys
from common.errors import ConcurrentUpdateError, ResourceThrottled
from common.redisurl import for_redis_py
from common.settings import Settings
from common.throttle_rules import ChaosRule, Rule, Scope, encode

KEY = AccessKey("LTAIlimiter", "secret", "acct-l")


class Counting:
    """Counts commands written by every asyncio Redis connection (one write = one round trip)."""

    def __enter__(self) -> Counting:
        self.sent = 0
        self._orig = aioconn.AbstractConnection.send_packed_command
        counter = self

        async def send(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.sent += 1
            await counter._orig(conn, command, check_health)

        aioconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aioconn.AbstractConnection.send_packed_command = self._orig  # type: ignore[method-assign]


def settings(redis_server: str, **kw: Any) -> Settings:
    return Settings(redis_url=redis_server, _env_file=None, **kw)


@pytest.fixture
async def client(redis_server: str, r: redis.Redis) -> AsyncIterator[Any]:
    c = aioredis.from_url(for_redis_py(redis_server))
    yield c
    await c.aclose()


async def admitted(limiter: Limiter, action: str, params: dict[str, str] | None = None) -> str:
    try:
        await limiter.admit(action, KEY, params or {})
        return "ok"
    except ResourceThrottled as exc:
        return f"429:{exc.retry_after_ms > 0}"


async def test_no_rule_no_round_trip_and_one_when_a_rule_applies(redis_server: str, r: redis.Redis, client: Any) -> None:
    r.hset(keys.THROTTLE_RULES, mapping={rule.id: encode(rule) for rule in [
        Rule(action="DescribeFlow", rate=1000, burst=1000),
        Rule(action="StartExecution", rate=1000, burst=1000, scope=Scope.FLOW, target="busy"),
        Rule(action="StartExecution", rate=1000, burst=1000, scope=Scope.ACCESS_KEY),
    ]})  # fmt: skip
    # No background refresh during the count (it would be one more command).
    limiter = Limiter(client, settings(redis_server, max_running_executions=0, throttle_refresh_ms=600_000))
    await limiter.start()
    try:
        await limiter.admit("DescribeFlow", KEY, {})  # loads the script, outside the count
        for action, params, trips in [
            ("ListFlows", {}, 0),  # no rule
            ("DescribeExecution", {"FlowName": "busy"}, 0),
            ("DescribeFlow", {}, 1),  # one rule
            ("StartExecution", {"FlowName": "quiet"}, 1),  # the access-key rule only
            ("StartExecution", {"FlowName": "busy"}, 1),  # two buckets, still one script call
        ]:
            with Counting() as counted:
                assert await admitted(limiter, action, params) == "ok"
            assert counted.sent == trips, (action, params)
    finally:
        await limiter.stop()


async def test_the_running_cap_is_checked_in_the_same_call(redis_server: str, r: redis.Redis, client: Any) -> None:
    limiter = Limiter(client, settings(redis_server, max_running_executions=3, throttle_refresh_ms=600_000))
    await limiter.start()
    try:
        with Counting() as counted:
            assert await admitted(limiter, "StartExecution") == "ok"
            assert await admitted(limiter, "ListFlows") == "ok"  # the cap is StartExecution's only
        assert counted.sent <= 2  # the first call may also load the script (EVALSHA, then EVAL on NOSCRIPT)
        r.set(keys.running(KEY.account), 3)
        with pytest.raises(ResourceThrottled) as refused:
            await limiter.admit("StartExecution", KEY, {})
        assert refused.value.retry_after_ms == 1000 and "has 3 running executions, the limit is 3" in refused.value.message
    finally:
        await limiter.stop()


async def test_changes_are_picked_up_in_the_background_without_restart(redis_server: str, r: redis.Redis, client: Any) -> None:
    limiter = Limiter(client, settings(redis_server, throttle_refresh_ms=50))
    await limiter.start()
    try:
        assert limiter.rules.rules == ()
        rule = Rule(action="ListFlows", rate=0.001, burst=1)
        r.hset(keys.THROTTLE_RULES, rule.id, encode(rule))
        r.hset(keys.THROTTLE_RULES, "garbage", "{not json")  # ignored, with a warning
        deadline = time.monotonic() + 10
        while limiter.rules.rules != (rule,):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert [await admitted(limiter, "ListFlows") for _ in range(2)] == ["ok", "429:True"]
        r.delete(keys.THROTTLE_RULES)
        while limiter.rules.rules:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert await admitted(limiter, "ListFlows") == "ok"
    finally:
        await limiter.stop()


async def test_chaos_draws_its_share_and_answers_the_chosen_error(redis_server: str, r: redis.Redis, client: Any) -> None:
    r.hset(keys.CHAOS_RULES, "*", encode(ChaosRule(action="*", error="ConcurrentUpdateError", rate=0.25)))
    limiter = Limiter(client, settings(redis_server, max_running_executions=0, chaos_seed=7))  # OPENFNF_CHAOS_SEED
    await limiter.start()
    try:
        failed = []
        for i in range(2000):
            try:
                await limiter.admit("UpdateFlow", KEY, {})
            except ConcurrentUpdateError:
                failed.append(i)
        draws = random.Random(7)
        assert failed == [i for i in range(2000) if draws.random() < 0.25]  # the seeded draws, exactly
        assert 400 <= len(failed) <= 600  # 25% of 2000 = 500 (sd 19)
    finally:
        await limiter.stop()


async def test_a_rules_file_and_profile_are_seeded_at_start(redis_server: str, r: redis.Redis, client: Any, tmp_path: Any) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [{"action": "StartExecution", "rate": 7, "burst": 3}]}')
    r.hset(keys.THROTTLE_RULES, "flow/ListFlows/x", encode(Rule(action="ListFlows", rate=1, burst=1, scope=Scope.FLOW, target="x")))
    limiter = Limiter(client, settings(redis_server, throttle_file=path, throttle_profile="cloud"))
    await limiter.start()
    await limiter.stop()
    got = {rule.id: (rule.rate, rule.burst) for rule in limiter.rules.rules}
    assert got == {
        "account/*/*": (2, 10),
        "account/DescribeExecution/*": (5, 50),
        "account/GetExecutionHistory/*": (5, 50),
        "account/StartExecution/*": (7, 3),  # the file's rule replaced the profile's
        "flow/ListFlows/x": (1, 1),  # seeding keeps the rules it does not name
    }


async def test_stop_ends_the_refresh_even_when_cancelled_mid_refresh(redis_server: str, r: redis.Redis, client: Any) -> None:
    """A cancel that lands as redis-py's wait_for finishes a write is swallowed there (Python 3.11); stop() still ends."""
    for i in range(40):
        limiter = Limiter(client, settings(redis_server, throttle_refresh_ms=1))
        await limiter.start()
        await asyncio.sleep(random.Random(i).random() * 0.01)  # somewhere in a sleep or a refresh
        stopping = asyncio.ensure_future(limiter.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)
        assert stopping in done, "Limiter.stop() did not end"
