"""Schedule firing on a real redis-server with the clock as an argument: the schedule actions write the
records (api/actions/schedules.py), ScheduleFirer (worker/schedules.py) fires them as timers processes do."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from api.actions import schedules as actions
from api.actions.context import Call
from api.credentials import AccessKey
from common import keys, runcount
from common.errors import ConcurrentUpdateError
from common.schedules import member, tick_execution_name
from common.scripts import Scripts
from common.settings import Settings
from common.store import Store
from worker.schedules import CLAIM_MS, ScheduleFirer

ACCT = "acct1"
T0 = 1_700_000_000_000  # a whole second (2023-11-14T22:13:20Z)
SETTINGS = Settings(redis_url="redis://unused", express_timeout_seconds=300)


class Published:
    """Stands in for Timers.publish_drives: records the tags handed to the workers."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def __call__(self, tags: list[str]) -> None:
        self.tags.extend(tags)


@pytest.fixture
async def store(redis_server: str, r: redis.Redis) -> AsyncIterator[Store]:
    client = aioredis.from_url(redis_server)
    yield Store(client, SETTINGS)
    await client.aclose()


def firer(redis_server: str) -> tuple[ScheduleFirer, Published]:
    """A firer with its own connection, as in its own timers process."""
    client = redis.Redis.from_url(redis_server)
    published = Published()
    return ScheduleFirer(client, Scripts(client), SETTINGS, published), published


async def make_flow(store: Store, name: str = "f", mode: str = "Standard") -> dict[str, str]:
    fields = {"Id": str(uuid.uuid4()), "Name": name, "DefId": "def1", "ExecutionMode": mode, "Definition": "x"}
    await store.redis.hset(keys.flow(ACCT, name), mapping=fields)
    await store.redis.zadd(keys.flow_index(ACCT), {name: 0})
    return fields


async def act(store: Store, handler: Any, now: int, **params: str) -> dict[str, Any]:
    call = Call(
        key=AccessKey("AK", "secret", ACCT), params=params, now=now, settings=SETTINGS, store=store, publisher=None, waiters=None
    )
    return dict(await handler(call))


def started(r: redis.Redis, flow: dict[str, str]) -> list[str]:
    """Names of the flow's executions, in start order."""
    return [n.decode() for n in r.zrange(keys.executions_index(flow["Id"]), 0, -1)]


def record(r: redis.Redis, flow: dict[str, str], name: str = "s") -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.schedule(ACCT, flow["Id"], name)).items()}


async def test_two_firers_start_each_tick_once(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0 + 300, FlowName="f", ScheduleName="s", CronExpression="@every 1s",
              Enable="True", Payload='{"k":1}')  # fmt: skip
    (a, pa), (b, pb) = firer(redis_server), firer(redis_server)
    assert a.fire(T0 + 999) == 0  # not due yet
    r.script_flush()  # as after a Redis restart: the first claim pipeline meets NOSCRIPT and runs again
    for second in range(1, 11):
        now = T0 + second * 1000 + 20
        a.fire(now)
        b.fire(now)
    names = started(r, flow)
    assert names == [tick_execution_name("s", T0 + i * 1000) for i in range(1, 11)]
    assert sorted(pa.tags + pb.tags) == sorted(keys.execution_tag(flow["Id"], n) for n in names)  # each driven once
    rec = r.hgetall(keys.execution(keys.execution_tag(flow["Id"], names[0])))
    assert rec[b"input"] == b'{"k":1}' and rec[b"defid"] == b"def1" and rec[b"status"] == b"Running"
    inbox = json.loads(r.lindex(keys.inbox(keys.execution_tag(flow["Id"], names[0])), 0))
    assert inbox["t"] == "Started" and inbox["input"] == {"k": 1}  # Payload is the execution input
    assert runcount.read_total_sync(r, ACCT, Settings().running_shards) == 10  # nothing counted twice, not even by the repeated pipeline


async def test_a_tick_fired_again_after_a_stalled_claim_starts_nothing(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s", Enable="true")
    a, _ = firer(redis_server)
    b, pb = firer(redis_server)
    a.fire(T0 + 1000)
    # Process A started the tick's execution and died before re-arming: the record still holds the tick.
    hint = member(ACCT, "f", flow["Id"], "s")
    r.hset(keys.schedule(ACCT, flow["Id"], "s"), "next", str(T0 + 1000))
    r.zadd(keys.schedules_due_for(hint, 16), {hint: T0 + 1000 + CLAIM_MS})
    assert b.fire(T0 + 1500) == 0  # still claimed by A
    b.fire(T0 + 1000 + CLAIM_MS)  # the claim expired: B takes over
    assert started(r, flow) == [tick_execution_name("s", T0 + 1000)]  # the tick collided, no second execution
    assert pb.tags == []
    assert runcount.read_total_sync(r, ACCT, Settings().running_shards) == 1  # the refused claim gave its count back
    # and the schedule goes on from now, without replaying the ticks it missed meanwhile
    assert CLAIM_MS == 30_000
    assert record(r, flow)["next"] == str(T0 + 32_000)


async def test_missed_ticks_fire_once_then_continue_from_now(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s", Enable="true")
    a, _ = firer(redis_server)
    a.fire(T0 + 1000)
    assert SETTINGS.schedule_catchup_seconds == 10
    a.fire(T0 + 20_500)  # every timers process was down for 19 ticks, longer than the catch-up window
    assert started(r, flow) == [tick_execution_name("s", T0 + 1000), tick_execution_name("s", T0 + 2000)]
    assert record(r, flow)["next"] == str(T0 + 21_000)  # no burst: the next tick after now
    a.fire(T0 + 20_900)
    assert len(started(r, flow)) == 2
    a.fire(T0 + 21_000)
    assert started(r, flow)[-1] == tick_execution_name("s", T0 + 21_000)
    assert len(started(r, flow)) == 3


async def test_ticks_a_little_late_all_fire_in_order(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s", Enable="true")
    a, _ = firer(redis_server)
    a.fire(T0 + 1000)
    # The timers process stalled for 3.5 s (within the catch-up window): each loop round fires one more tick.
    rounds = 0
    while a.fire(T0 + 4500):
        rounds += 1
    assert rounds == 3
    assert started(r, flow) == [tick_execution_name("s", T0 + i * 1000) for i in range(1, 5)]
    assert record(r, flow)["next"] == str(T0 + 5000)


async def test_cron_ticks_in_the_schedules_zone(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    # T0 is 22:13:20 UTC = 06:13:20 in Shanghai; the schedule fires at 06:14:00 Shanghai time.
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s",
              CronExpression="CRON_TZ=Asia/Shanghai 0 14 6 * * *", Enable="true")  # fmt: skip
    a, _ = firer(redis_server)
    a.fire(T0 + 39_999)
    assert started(r, flow) == []
    a.fire(T0 + 40_000)
    assert started(r, flow) == ["s-20231114T221400Z"]
    assert record(r, flow)["next"] == str(T0 + 40_000 + 86_400_000)


async def test_disabled_schedules_are_not_armed_and_enabling_restarts_from_now(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    view = await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s")
    assert view["Enable"] is False  # Enable omitted: disabled (docs/compatibility.md)
    hint = member(ACCT, "f", flow["Id"], "s")
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) is None and record(r, flow)["next"] == ""
    await act(store, actions.update_schedule, T0 + 5200, FlowName="f", ScheduleName="s", Enable="True")
    assert record(r, flow)["next"] == str(T0 + 6000) and r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 6000
    await act(store, actions.update_schedule, T0 + 5500, FlowName="f", ScheduleName="s", Enable="False")
    a, _ = firer(redis_server)
    a.fire(T0 + 6000)
    assert started(r, flow) == []
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) is None  # the stale hint was dropped


async def test_updating_the_expression_re_arms_from_now(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1h", Enable="true")
    hint = member(ACCT, "f", flow["Id"], "s")
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 3_600_000
    await act(store, actions.update_schedule, T0 + 100, FlowName="f", ScheduleName="s", CronExpression="@every 2s")
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 2000  # lowered at once
    await act(store, actions.update_schedule, T0 + 200, FlowName="f", ScheduleName="s", CronExpression="@every 1m")
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 2000  # a later tick leaves an early hint...
    a, _ = firer(redis_server)
    a.fire(T0 + 2000)
    assert started(r, flow) == []  # ...which wakes the timers early: nothing fires
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 60_000  # and the hint now follows the record
    # Same expression again: the cadence is kept.
    await act(store, actions.update_schedule, T0 + 30_000, FlowName="f", ScheduleName="s", CronExpression="@every 1m",
              Description="d")  # fmt: skip
    assert record(r, flow)["next"] == str(T0 + 60_000)


async def test_an_update_between_fire_and_arm_wins(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s", Enable="true")
    a, _ = firer(redis_server)
    original = a._start

    def start_then_update(*args: Any) -> Any:
        tag = original(*args)
        # An UpdateSchedule lands while the timers process fires the tick.
        r.hset(keys.schedule(ACCT, flow["Id"], "s"), mapping={"next": str(T0 + 50_000), "CronExpression": "@every 50s"})
        r.zadd(keys.schedules_due_for(member(ACCT, "f", flow["Id"], "s"), 16), {member(ACCT, "f", flow["Id"], "s"): T0 + 50_000}, lt=True)
        return tag

    a._start = start_then_update  # type: ignore[method-assign]
    a.fire(T0 + 1000)
    assert record(r, flow)["next"] == str(T0 + 50_000)  # the arm did not overwrite the update
    hint = member(ACCT, "f", flow["Id"], "s")
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) <= T0 + 50_000  # never later than the record: at worst an early wake-up
    a._start = original  # type: ignore[method-assign]
    a.fire(T0 + 2000)
    assert started(r, flow) == [tick_execution_name("s", T0 + 1000)]  # the early wake-up starts nothing
    assert r.zscore(keys.schedules_due_for(hint, 16), hint) == T0 + 50_000


async def test_deleted_schedules_and_flows_stop_firing(redis_server: str, r: redis.Redis, store: Store) -> None:
    from api.actions import flows as flow_actions

    flow = await make_flow(store)
    for name in ("s", "t"):
        await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName=name, CronExpression="@every 1s", Enable="true")
    await act(store, actions.delete_schedule, T0 + 10, FlowName="f", ScheduleName="s")
    a, _ = firer(redis_server)
    a.fire(T0 + 1000)
    assert started(r, flow) == [tick_execution_name("t", T0 + 1000)]
    assert r.zscore(keys.schedules_due_for(member(ACCT, "f", flow["Id"], "s"), 16), member(ACCT, "f", flow["Id"], "s")) is None
    # DeleteFlow takes its schedules along.
    await act(store, flow_actions.delete_flow, T0 + 1100, Name="f")
    assert r.exists(keys.schedule(ACCT, flow["Id"], "t"), keys.schedule_index(ACCT, flow["Id"])) == 0
    # A schedule whose flow vanished without it (a crash mid-delete) is dropped when it comes due.
    flow2 = await make_flow(store, "g")
    await act(store, actions.create_schedule, T0, FlowName="g", ScheduleName="u", CronExpression="@every 1s", Enable="true")
    await store.redis.hset(keys.flow(ACCT, "g"), "Id", "a-new-flow-of-the-same-name")
    a.fire(T0 + 2000)
    assert started(r, flow2) == [] and r.exists(keys.schedule(ACCT, flow2["Id"], "u")) == 0
    assert sum(r.zcard(keys.schedules_due(p, 16)) for p in range(16)) == 0


async def test_express_flows_get_their_time_limit(redis_server: str, r: redis.Redis, store: Store) -> None:
    flow = await make_flow(store, "x", mode="Express")
    await act(store, actions.create_schedule, T0, FlowName="x", ScheduleName="s", CronExpression="@every 1s", Enable="true")
    a, _ = firer(redis_server)
    a.fire(T0 + 1000)
    tag = keys.execution_tag(flow["Id"], tick_execution_name("s", T0 + 1000))
    [(entry, due)] = r.zrange(keys.timers_for(tag, 16), 0, -1, withscores=True)
    assert json.loads(entry)["tag"] == tag and json.loads(entry)["event"]["error"] == "FnF.Timeout"
    assert due == T0 + 1000 + 300_000


async def test_concurrent_updates_conflict(redis_server: str, r: redis.Redis, store: Store) -> None:
    await make_flow(store)
    await act(store, actions.create_schedule, T0, FlowName="f", ScheduleName="s", CronExpression="@every 1s")
    original = store.redis.hgetall

    async def read_then_someone_writes(key: Any) -> Any:
        raw = await original(key)
        await store.redis.hincrby(key, "rev", 1)  # another UpdateSchedule committed after our read
        return raw

    store.redis.hgetall = read_then_someone_writes  # type: ignore[method-assign]
    with pytest.raises(ConcurrentUpdateError):
        await act(store, actions.update_schedule, T0 + 5, FlowName="f", ScheduleName="s", Description="x")


def test_names_are_unique_per_schedule_and_tick_and_fit_128() -> None:
    assert tick_execution_name("nightly", T0) == "nightly-20231114T221320Z"
    long_a, long_b = "a" * 120 + "x", "a" * 120 + "y"
    na, nb = tick_execution_name(long_a, T0), tick_execution_name(long_b, T0)
    assert len(na) == len(nb) == 128 and na != nb
