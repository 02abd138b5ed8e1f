"""At most one queued drive per execution (the record's `dq` mark) on a real redis-server: the Lua
(append.lua and report.lua set it, commit.lua clears it; taking the lease leaves it), then the races around it
with the real Driver and ActivityRunner.deliver: a busy holder, a lease that expired, a holder that
gives up with events left (MAX_ROUNDS, shutdown hand-back), and a lost drive message, which the
safety net re-drives whatever the mark says."""
from __future__ import annotations

import base64
import contextvars
import json
from typing import Any

import pytest
import redis

from common import keys, runcount
from common.claims import queue_claim
from common.driverscripts import HELD, acquire_sync, new_fence
from common.interpreter import Decision, Status
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import DRIVE_TASK
from common.tokens import make_token
from worker.activities import ActivityRunner
from worker.dispatch import Dispatcher
from worker.driver import Driver
from worker.functions import Functions
from worker.timers import Timers

ACCOUNT = "acct"
PASS1 = "Type: StateMachine\nSpecVersion: v1\nName: p\nStartAt: A\nStates:\n  - {Type: Pass, Name: A, End: true}\n"
WAIT = "Type: StateMachine\nSpecVersion: v1\nName: w\nStartAt: W\nStates:\n  - {Type: Wait, Name: W, Seconds: 3600, End: true}\n"
STALE = 5000  # the age (ms) after which a mark is not trusted, as the runner passes wake_after_ms


def _claim(r: redis.Redis, settings: Settings, name: str, definition: str = WAIT) -> str:
    """An execution claimed as StartExecution does (its Started waits in the inbox; nothing driven yet)."""
    r.set(keys.definition("d1"), definition)
    scripts = Scripts(r)
    holder: dict[str, Any] = {}

    def build(pipe: Any) -> None:
        holder["claim"] = queue_claim(
            scripts, pipe, settings, account=ACCOUNT, flow={"Id": "f1", "Name": "w"}, name=name, raw_input="{}",
            input_obj={}, def_id="d1", now=1_000,
        )  # fmt: skip

    results = scripts.pipeline_sync(build)
    assert holder["claim"].outcome(results).created
    r.incr(runcount.key_for(ACCOUNT, keys.execution_tag("f1", name), settings.running_shards))
    return keys.execution_tag("f1", name)


def _mark(r: redis.Redis, tag: str) -> bytes | None:
    value: bytes | None = r.hget(keys.execution(tag), "dq")  # type: ignore[assignment]
    return value


def _event(i: int) -> dict[str, Any]:
    return {"t": "ActivityCompleted", "id": f"nobody-waits-{i}", "result": i}  # dropped by the interpreter


@pytest.fixture
def runner(r: redis.Redis, settings: Settings, published: list[str]) -> ActivityRunner:
    return ActivityRunner(r, settings, Functions([]), published.append)


def _drive(driver: Driver, tag: str) -> str:
    return contextvars.copy_context().run(driver.drive, tag)


# ------------------------------------------------------------------ the Lua


def test_append_marks_once_and_tells_the_caller_whether_to_publish(r: redis.Redis, settings: Settings) -> None:
    s = Scripts(r)
    tag = _claim(r, settings, "e1")
    ekeys = [keys.execution(tag), keys.inbox(tag)]
    assert s.append(keys=ekeys, args=["{}"]) == [1, b"Running"]  # without a clock: as before, no mark
    assert _mark(r, tag) is None
    assert s.append(keys=ekeys, args=['{"n":1}', 10_000, STALE]) == [1, b"Running", 1]  # publish
    assert _mark(r, tag) == b"10000"
    assert s.append(keys=ekeys, args=['{"n":2}', 10_001, STALE, '{"n":3}', '{"n":4}']) == [1, b"Running", 0]  # queued
    assert r.lrange(keys.inbox(tag), 1, -1) == [b"{}", b'{"n":1}', b'{"n":2}', b'{"n":3}', b'{"n":4}']
    assert s.append(keys=ekeys, args=["{}", 10_000 + STALE, STALE]) == [1, b"Running", 1]  # too old: publish again
    assert _mark(r, tag) == str(10_000 + STALE).encode()
    assert s.append(keys=ekeys, args=["{}", 10_000 + STALE - STALE - 1, STALE]) == [1, b"Running", 1]  # from a clock far behind
    r.hset(keys.execution(tag), "status", "Succeeded")
    r.hdel(keys.execution(tag), "dq")
    assert s.append(keys=ekeys, args=["{}", 20_000, STALE]) == [0, b"Succeeded"]  # ended: nothing appended, no mark
    assert _mark(r, tag) is None
    gone = keys.execution_tag("f1", "never")
    assert s.append(keys=[keys.execution(gone), keys.inbox(gone)], args=["{}", 1, STALE]) == [-1]
    assert not r.exists(keys.execution(gone))


def test_report_marks_like_append(r: redis.Redis, settings: Settings) -> None:
    s = Scripts(r)
    tag = _claim(r, settings, "e1")
    rkeys = [keys.execution(tag), keys.inbox(tag), keys.tasks(tag)]
    r.hset(keys.tasks(tag), mapping={"1": "waiting", "2": "waiting", "3": "waiting"})
    assert s.report(keys=rkeys, args=["1", "{}", ""]) == [1, 0]  # without a clock: as before
    assert s.report(keys=rkeys, args=["2", "{}", "", 10_000, STALE]) == [1, 0, 1]
    assert s.report(keys=rkeys, args=["3", "{}", "", 10_001, STALE]) == [1, 0, 0]
    assert s.report(keys=rkeys, args=["3", "{}", "", 10_002, STALE]) == [0]  # already completed
    assert _mark(r, tag) == b"10000"


def test_the_holder_keeps_the_mark_and_every_commit_clears_it(r: redis.Redis, settings: Settings) -> None:
    s = Scripts(r)
    tag = _claim(r, settings, "e1")
    xkeys, ekeys = keys.execution_keys(tag), [keys.execution(tag), keys.inbox(tag)]
    assert s.append(keys=ekeys, args=["{}", 10_000, STALE])[2] == 1  # publish
    got = acquire_sync(r, tag, 5000, new_fence())
    assert _mark(r, tag) == b"10000" and len(got.inbox) == 2  # the holder reads everything
    assert s.append(keys=ekeys, args=["{}", 10_001, STALE])[2] == 0  # arrives while it drives: its commit counts it
    assert acquire_sync(r, tag, 5000, new_fence()).token == HELD  # a drive from elsewhere finds the lease held
    assert _mark(r, tag) == b"10000"
    assert s.commit(keys=xkeys, args=[got.token, len(got.inbox), "{}", "", 1, 0, keys.DONE_CHANNEL, tag]) == 1
    assert _mark(r, tag) is None  # an event is left: whoever comes next publishes, should the holder stop here
    got = acquire_sync(r, tag, 5000, new_fence())
    assert s.commit(keys=xkeys, args=[got.token, len(got.inbox), "{}", "", 1, 0, keys.DONE_CHANNEL, tag]) == 0
    assert _mark(r, tag) is None and r.llen(keys.inbox(tag)) == 0
    got = acquire_sync(r, tag, 5000, new_fence())
    s.append(keys=ekeys, args=["{}", 10_003, STALE])
    assert _mark(r, tag) == b"10003"
    r.delete(keys.lease(tag))
    assert s.commit(keys=xkeys, args=[got.token, 0, "{}", "", 1, 0, keys.DONE_CHANNEL, tag]) == -1  # fenced
    assert _mark(r, tag) is None  # the fenced holder may have swallowed a drive: the next event publishes
    assert r.llen(keys.inbox(tag)) == 1


# ------------------------------------------------------------------ the races, with the real driver


def test_one_drive_is_published_while_one_is_queued(r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]) -> None:
    tag = _claim(r, settings, "e1")
    driver = Driver(r, settings)
    assert _drive(driver, tag) == "driven"  # Started: the execution now waits an hour
    assert [runner.deliver(tag, _event(i)) for i in range(3)] == [True, False, False]
    assert published == [tag]
    assert _drive(driver, tag) == "driven" and r.llen(keys.inbox(tag)) == 0
    assert _mark(r, tag) is None
    assert runner.deliver(tag, _event(3)) is True and published == [tag, tag]


def test_a_busy_holder_goes_round_and_the_next_event_publishes_once_it_stops(
    r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]
) -> None:
    """The holder's commit says events are left (it goes round again, or MAX_ROUNDS / a shutdown
    stops it); either way the mark is clear, so the next event publishes."""
    s = Scripts(r)
    tag = _claim(r, settings, "e1")
    driver = Driver(r, settings)
    _drive(driver, tag)
    held = acquire_sync(r, tag, settings.lease_ms, new_fence())  # the holder
    assert runner.deliver(tag, _event(1)) is True  # no drive is queued (the last commit cleared the mark): publish
    assert _drive(driver, tag) == "busy"  # the drive it published meets the holder
    assert runner.deliver(tag, _event(2)) is False  # the holder will see it: nothing to publish
    left = s.commit(keys=keys.execution_keys(tag), args=[held.token, len(held.inbox), "{}", "", 1, 0, keys.DONE_CHANNEL, tag])
    assert left == 2
    # The holder stops here (MAX_ROUNDS, or SIGTERM hands the rest back): the next event drives it.
    assert runner.deliver(tag, _event(3)) is True and published == [tag, tag]
    assert _drive(driver, tag) == "driven" and r.llen(keys.inbox(tag)) == 0


def test_a_holder_that_lost_its_lease_takes_it_again_and_reads_what_came_meanwhile(
    r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]
) -> None:
    tag = _claim(r, settings, "e1")
    driver = Driver(r, settings)
    _drive(driver, tag)
    dispatch = driver.dispatcher.dispatch
    lost: list[str] = []

    def deliver_then_lose_the_lease(t: str, commands: list[dict[str, Any]], *rest: Any) -> None:
        dispatch(t, commands, *rest)
        if not lost:
            assert runner.deliver(tag, _event(2)) is False  # arrives mid-drive: the holder's commit will count it
            lost.append(r.get(keys.lease(tag)) or b"")
            r.delete(keys.lease(tag))  # the lease expires before the commit

    assert runner.deliver(tag, _event(1)) is True
    driver.dispatcher.dispatch = deliver_then_lose_the_lease  # type: ignore[method-assign]
    assert _drive(driver, tag) == "driven"  # fenced once, then it took the lease again and drove event 2
    driver.dispatcher.dispatch = dispatch  # type: ignore[method-assign]
    assert lost and published == [tag] and _mark(r, tag) is None and r.llen(keys.inbox(tag)) == 0
    assert runner.deliver(tag, _event(3)) is True  # not held back by a drive that may have been swallowed
    assert _drive(driver, tag) == "driven" and r.llen(keys.inbox(tag)) == 0


def test_a_lost_drive_is_redriven_by_the_safety_net_and_a_stale_mark_publishes_again(
    r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]
) -> None:
    tag = _claim(r, settings, "e1")
    driver = Driver(r, settings)
    _drive(driver, tag)
    assert runner.deliver(tag, _event(1)) is True
    published.clear()  # that drive message is lost (a worker SIGKILLed before kombu recorded it)
    assert runner.deliver(tag, _event(2)) is False  # the mark believes it queued
    # The safety net does not look at the mark: the wake-up the deliveries recorded re-drives it.
    deadline = int(r.zscore(keys.wake_for(tag, 16), tag) or 0)
    timers = Timers(r, r, settings)
    r.delete(settings.drive_queue)
    assert timers.rescue(deadline + 1) == 1
    queued = [json.loads(m) for m in r.lrange(settings.drive_queue, 0, -1)]
    assert [m["headers"]["task"] for m in queued] == [DRIVE_TASK]
    assert _drive(driver, tag) == "driven" and r.llen(keys.inbox(tag)) == 0 and _mark(r, tag) is None
    # A mark older than wake_after_ms is not trusted: the next event publishes again.
    assert runner.deliver(tag, _event(3)) is True
    r.hset(keys.execution(tag), "dq", str(int(_mark(r, tag) or 0) - settings.wake_after_ms))
    assert runner.deliver(tag, _event(4)) is True and published == [tag, tag]
    assert runner.deliver(tag, _event(5)) is False


def test_events_for_an_ended_execution_publish_nothing(r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]) -> None:
    tag = _claim(r, settings, "e1", PASS1)
    assert _drive(Driver(r, settings), tag) == "driven"
    assert r.hget(keys.execution(tag), "status") == b"Succeeded"
    assert runner.deliver(tag, _event(1)) is False and published == [] and r.llen(keys.inbox(tag)) == 0


def test_children_ending_together_publish_one_drive_of_their_parent(r: redis.Redis, settings: Settings) -> None:
    """Dispatcher.notify_parent reports a child's end through report.lua with the mark."""
    parent = _claim(r, settings, "parent")
    r.hset(keys.tasks(parent), mapping={"7": "waiting", "8": "waiting", "9": "waiting"})
    flow_id, name = keys.split_tag(parent)
    dispatcher = Dispatcher(r, r, settings)
    ended = Decision(state={}, history=[], status=Status.SUCCEEDED, output={"ok": True})
    for task_id in ("7", "8"):
        dispatcher.notify_parent(make_token(settings.token_secret, flow_id, name, task_id), ended, 10_000)
    assert r.llen(settings.drive_queue) == 1 and r.llen(keys.inbox(parent)) == 3  # Started and two reports
    held = acquire_sync(r, parent, 5000, new_fence())  # the drive takes the lease
    dispatcher.notify_parent(make_token(settings.token_secret, flow_id, name, "9"), ended, 10_001)
    assert r.llen(settings.drive_queue) == 1  # the holder's commit counts the third report: no drive for it
    left = Scripts(r).commit(keys=keys.execution_keys(parent), args=[held.token, len(held.inbox), "{}", "", 1, 0, keys.DONE_CHANNEL, parent])
    assert left == 1 and _mark(r, parent) is None  # left for the holder's next round; the next report publishes
    dispatcher.notify_parent(make_token(settings.token_secret, flow_id, name, "9"), ended, 10_002)  # (a repeat: refused)
    r.hset(keys.tasks(parent), "6", "waiting")
    dispatcher.notify_parent(make_token(settings.token_secret, flow_id, name, "6"), ended, 10_003)
    assert r.llen(settings.drive_queue) == 2


def test_timers_due_together_fire_in_one_round_trip_and_publish_one_drive_per_execution(r: redis.Redis, settings: Settings) -> None:
    a, b = _claim(r, settings, "a"), _claim(r, settings, "b")
    driver = Driver(r, settings)
    _drive(driver, a), _drive(driver, b)  # both wait now; their drives are done, no mark
    r.delete(*(keys.timers(p, 16) for p in range(16)))  # their Wait timers are not this test's
    for tag, timer in ((a, "t1"), (a, "t2"), (b, "t1")):
        r.zadd(keys.timers_for(tag, 16), {json.dumps({"tag": tag, "event": {"t": "TimerFired", "id": timer}}): 500})
    r.delete(settings.drive_queue)
    timers = Timers(r, r, settings)
    assert timers.fire_timers(10**13) == 3
    queued = [json.loads(m) for m in r.lrange(settings.drive_queue, 0, -1)]
    tags = [t for m in queued for t in json.loads(base64.b64decode(m["body"]))[0]]
    assert sorted(tags) == sorted([a, b])  # a's two timers: one drive
    assert _mark(r, a) is not None and _mark(r, b) is not None
    assert r.llen(keys.inbox(a)) == 2 and r.llen(keys.inbox(b)) == 1 and sum(r.zcard(keys.timers(p, 16)) for p in range(16)) == 0
    assert timers.fire_timers(10**13) == 0
    # Another timer of `a` while its drive is still queued: appended, no second drive.
    r.delete(settings.drive_queue)
    r.zadd(keys.timers_for(a, 16), {json.dumps({"tag": a, "event": {"t": "TimerFired", "id": "t3"}}): 500})
    assert timers.fire_timers(10**13) == 1
    assert r.llen(keys.inbox(a)) == 3 and r.llen(settings.drive_queue) == 0
