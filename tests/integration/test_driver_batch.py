"""Driver.drive_many on a real redis-server: one drive message carries many executions; each ends
exactly as it would alone, the busy and the missing are told apart, and the running count is
given back once per execution that ends (and taken again if its commit was fenced)."""
from __future__ import annotations

import contextvars
import json
from typing import Any

import redis

from common import keys, runcount
from common.claims import queue_claim
from common.records import decode_history
from common.scripts import Scripts
from common.settings import Settings
from worker.driver import Driver

ACCOUNT = "acct"
PASS3 = """Type: StateMachine
SpecVersion: v1
Name: pass3
StartAt: A
States:
  - {Type: Pass, Name: A, Next: B}
  - {Type: Pass, Name: B, Next: C}
  - {Type: Pass, Name: C, End: true}
"""


def _start(r: redis.Redis, settings: Settings, name: str) -> str:
    """Claim execution `name` of the 3-Pass flow as StartExecution does (no front door, no worker)."""
    r.set(keys.definition("d1"), PASS3)
    flow = {"Id": "f1", "Name": "pass3"}
    scripts = Scripts(r)
    holder: dict[str, Any] = {}

    def build(pipe: Any) -> None:
        holder["claim"] = queue_claim(
            scripts, pipe, settings, account=ACCOUNT, flow=flow, name=name, raw_input='{"n": 1}',
            input_obj={"n": 1}, def_id="d1", now=1_000,
        )  # fmt: skip

    results = scripts.pipeline_sync(build)
    assert holder["claim"].outcome(results).created
    r.incr(runcount.key_for(ACCOUNT, keys.execution_tag("f1", name), settings.running_shards))
    return keys.execution_tag("f1", name)


def _drive_many(driver: Driver, tags: list[str]) -> dict[str, str]:
    return contextvars.copy_context().run(driver.drive_many, tags)


def _wakes(r: redis.Redis) -> list[bytes]:
    return [m for p in range(16) for m in r.zrange(keys.wake(p, 16), 0, -1)]


def test_a_batch_ends_each_execution_as_alone(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    tags = [_start(r, settings, f"e{i}") for i in range(5)]
    alone = _start(r, settings, "alone")
    busy = _start(r, settings, "busy")
    r.set(keys.lease(busy), "999", px=60_000)  # another driver holds it
    missing = keys.execution_tag("f1", "never-started")
    driver = Driver(r, settings)

    outcomes = _drive_many(driver, [*tags, busy, missing, tags[0]])  # tags[0] twice: driven once
    assert outcomes == {**dict.fromkeys(tags, "driven"), busy: "busy", missing: "missing"}
    assert _drive_many(driver, [alone]) == {alone: "driven"}
    events = r.llen(keys.history(tags[0]))
    assert driver.drive(tags[0]) == "driven" and r.llen(keys.history(tags[0])) == events  # a repeat drive adds nothing

    for tag in [*tags, alone]:
        record = r.hgetall(keys.execution(tag))
        assert record[b"status"] == b"Succeeded" and json.loads(record[b"output"]) == {"n": 1}
        assert r.llen(keys.inbox(tag)) == 0 and not r.exists(keys.lease(tag))
    histories = [[e.type for e in decode_history(r.lrange(keys.history(t), 0, -1))] for t in [*tags, alone]]
    assert all(h == histories[-1] for h in histories) and histories[-1][-1] == "ExecutionSucceeded"
    assert r.hget(keys.execution(busy), "status") == b"Running" and r.llen(keys.inbox(busy)) == 1
    assert runcount.read_total_sync(r, ACCOUNT, Settings().running_shards) == 1  # 7 started, 6 ended: the busy one still runs


def test_a_fenced_commit_in_a_batch_keeps_its_events_and_its_running_count(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    kept, lost = _start(r, settings, "kept"), _start(r, settings, "lost")
    driver = Driver(r, settings)
    dispatch = driver.dispatcher.dispatch

    def dispatch_then_lose_the_lease(tag: str, commands: list[dict[str, Any]], *rest: Any) -> None:
        dispatch(tag, commands, *rest)
        if tag == lost:
            r.set(keys.lease(tag), "12345", px=60_000)  # the lease expired and another driver took it

    driver.dispatcher.dispatch = dispatch_then_lose_the_lease  # type: ignore[method-assign]
    # fenced, it goes round again and finds the lease held by the other driver
    assert _drive_many(driver, [kept, lost]) == {kept: "driven", lost: "busy"}
    assert r.hget(keys.execution(kept), "status") == b"Succeeded"
    assert r.hget(keys.execution(lost), "status") == b"Running" and r.llen(keys.inbox(lost)) == 1
    assert runcount.read_total_sync(r, ACCOUNT, Settings().running_shards) == 1  # the fenced one still counts as running


def test_an_ended_execution_loses_its_wake_up_with_the_next_acquire_round_trip(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    first, second, lost = _start(r, settings, "first"), _start(r, settings, "second"), _start(r, settings, "lost")
    assert {m.decode() for m in _wakes(r)} == {first, second, lost}  # queue_claim armed them
    driver = Driver(r, settings)
    assert _drive_many(driver, [first]) == {first: "driven"}
    assert r.zscore(keys.wake_for(first, 16), first) is not None  # no round trip of its own: it waits for the next one
    dispatch = driver.dispatcher.dispatch

    def dispatch_then_lose_the_lease(tag: str, commands: list[dict[str, Any]], *rest: Any) -> None:
        dispatch(tag, commands, *rest)
        if tag == lost:
            r.set(keys.lease(tag), "12345", px=60_000)  # the lease expired and another driver took it

    driver.dispatcher.dispatch = dispatch_then_lose_the_lease  # type: ignore[method-assign]
    assert _drive_many(driver, [second, lost]) == {second: "driven", lost: "busy"}  # fenced, then held by the other
    assert r.zscore(keys.wake_for(first, 16), first) is None  # gone with this drive's acquire round trip
    # (and second's with the fenced one's next round, an acquire round trip of its own)
    assert r.zscore(keys.wake_for(second, 16), second) is None
    r.delete(keys.lease(lost))
    driver.dispatcher.dispatch = dispatch  # type: ignore[method-assign]
    assert _drive_many(driver, [lost]) == {lost: "driven"}
    assert r.hget(keys.execution(lost), "status") == b"Succeeded"
    # The fenced commit ended nothing, so the execution kept its wake-up until its real end.
    assert {m.decode() for m in _wakes(r)} == {lost}


def test_an_execution_that_fails_keeps_its_wake_up_as_a_redrive_may_reopen_it(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    r.set(keys.definition("d-fail"), "Type: StateMachine\nSpecVersion: v1\nName: f\nStartAt: F\nStates:\n  - {Type: Fail, Name: F, Error: E}\n")
    scripts = Scripts(r)

    def build(pipe: Any) -> None:
        queue_claim(
            scripts, pipe, settings, account=ACCOUNT, flow={"Id": "f2", "Name": "f"}, name="failing", raw_input="{}",
            input_obj={}, def_id="d-fail", now=1_000,
        )  # fmt: skip

    scripts.pipeline_sync(build)
    failing, other = keys.execution_tag("f2", "failing"), _start(r, settings, "other")
    driver = Driver(r, settings)
    assert _drive_many(driver, [failing]) == {failing: "driven"}
    assert r.hget(keys.execution(failing), "status") == b"Failed"
    _drive_many(driver, [other])
    # reopen.lua (RedriveExecution) re-arms a Failed one's wake-up itself: the driver must not race it
    assert r.zscore(keys.wake_for(failing, 16), failing) is not None


def test_a_start_s_own_wake_up_goes_once_its_first_drive_committed(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    # As the front door does (api/admission.py): the start's wake-up (keys.pending_start) a round trip before its claim.
    pending = keys.pending_start(ACCOUNT, "pass3", "admitted")
    r.zadd(keys.wake_for(pending, 16), {pending: 10**13})
    tag, other = _start(r, settings, "admitted"), _start(r, settings, "other")
    driver = Driver(r, settings)
    assert _drive_many(driver, [tag]) == {tag: "driven"}
    assert r.zscore(keys.wake_for(pending, 16), pending) is not None  # it waits for the next acquire round trip
    assert _drive_many(driver, [other]) == {other: "driven"}
    assert r.zscore(keys.wake_for(pending, 16), pending) is None  # gone, with the tag's own wake-up
    assert r.zscore(keys.wake_for(tag, 16), tag) is None


def test_a_start_s_own_wake_up_stays_while_its_first_drive_is_fenced(r: redis.Redis, redis_server: str) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server)
    pending = keys.pending_start(ACCOUNT, "pass3", "fenced")
    r.zadd(keys.wake_for(pending, 16), {pending: 10**13})
    tag = _start(r, settings, "fenced")
    driver = Driver(r, settings)
    dispatch = driver.dispatcher.dispatch

    def dispatch_then_lose_the_lease(t: str, commands: list[dict[str, Any]], *rest: Any) -> None:
        dispatch(t, commands, *rest)
        r.set(keys.lease(t), "12345", px=60_000)  # another driver took the lease: the Started event stays

    driver.dispatcher.dispatch = dispatch_then_lose_the_lease  # type: ignore[method-assign]
    assert _drive_many(driver, [tag]) == {tag: "busy"}  # fenced, then it went round and found the other holder
    driver.dispatcher.dispatch = dispatch  # type: ignore[method-assign]
    r.delete(keys.lease(tag))
    _drive_many(driver, [_start(r, settings, "next")])
    assert r.zscore(keys.wake_for(pending, 16), pending) is not None  # still guards the unconsumed Started event
