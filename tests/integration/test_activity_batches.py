"""Activity batches on a real redis-server: the dispatcher puts up to OPENFNF_ACTIVITY_BATCH commands of one
decision in one message, the runner runs them, keeps them alive, reports their results in one round
trip with at most one drive, and hands back what it has not started when the batch is slow."""
from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import redis

from common import keys
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK
from worker.activities import ActivityRunner, activity_member
from worker.dispatch import Dispatcher
from worker.functions import Binding, Functions

TAG = keys.execution_tag("f-batch", "exec-b")
HERE = "tests.integration.test_activity_batches"
RELEASE = threading.Event()  # lets `held` return once the test has seen what it waits for


def echo(event: bytes, context: Any) -> dict[str, Any]:
    return {"id": context.task_id, "event": json.loads(event)}


def held(event: bytes, context: Any) -> dict[str, Any]:
    """A slow call: returns when the test releases it (or after 30 s, which fails the test)."""
    return {"released": RELEASE.wait(30)}


def command(cid: str, function: str = "echo", **extra: Any) -> dict[str, Any]:
    base = {
        "t": "RunActivity", "id": cid, "step": "Call", "attempt": 1, "kind": "fc",
        "resource": f"acs:fc:cn-hangzhou:123:functions/{function}/LATEST", "action": "FC:InvokeFunction",
        "target": {}, "input": {"n": cid}, "params": None, "mode": "RequestComplete", "timeout_ms": None, "token": None,
    }  # fmt: skip
    return {**base, **extra}


def messages(r: redis.Redis, queue: str) -> list[list[Any]]:
    """The args of every activity message on the queue, oldest first (as BRPOP takes them)."""
    out = []
    for raw in reversed(r.lrange(queue, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == ACTIVITY_TASK
        out.append(json.loads(base64.b64decode(message["body"]))[0])
    return out


@pytest.fixture
def runner(r: redis.Redis, settings: Settings, published: list[str]) -> ActivityRunner:
    bindings = [
        Binding("acs:fc:*:*:functions/echo/*", python=f"{HERE}:echo"),
        Binding("acs:fc:*:*:functions/held/*", python=f"{HERE}:held"),
    ]
    r.hset(keys.execution(TAG), "status", "Running")
    return ActivityRunner(r, settings, Functions(bindings), published.append)


def _record(r: redis.Redis, commands: list[dict[str, Any]], deadline: int = 1) -> None:
    """As the dispatcher records them before publishing (deadline 1: long overdue unless kept alive)."""
    for c in commands:
        member = activity_member(TAG, c["id"])
        r.hset(keys.activity_commands_for(TAG, 16), member, json.dumps(c))
        r.zadd(keys.activities_for(TAG, 16), {member: deadline})


def _inbox_ids(r: redis.Redis) -> list[str]:
    return [json.loads(e)["id"] for e in r.lrange(keys.inbox(TAG), 0, -1)]


def test_the_dispatcher_batches_one_decisions_activities(r: redis.Redis, settings: Settings) -> None:
    dispatcher = Dispatcher(r, r, settings)
    per = settings.activity_batch
    commands = [command(str(i)) for i in range(2 * per + 3)]
    dispatcher.dispatch(TAG, [*commands, {"t": "StartTimer", "id": "9/wait", "fire_at": 5}])
    sent = messages(r, settings.activity_queue)
    assert [tag for tag, _ in sent] == [TAG] * 3
    assert [[c["id"] for c in batch] for _, batch in sent] == [
        [c["id"] for c in commands[i : i + per]] for i in range(0, len(commands), per)
    ]
    assert r.hlen(keys.activity_commands_for(TAG, 16)) == len(commands) and r.zcard(keys.activities_for(TAG, 16)) == len(commands)
    assert r.zcard(keys.timers_for(TAG, 16)) == 1
    r.delete(settings.activity_queue)
    dispatcher.dispatch(TAG, [command("lone")])
    assert messages(r, settings.activity_queue) == [[TAG, command("lone")]]  # one command: the message as before


def test_a_batch_reports_every_result_in_order_with_one_drive(r: redis.Redis, runner: ActivityRunner, published: list[str]) -> None:
    commands = [command(str(i)) for i in range(5)]
    _record(r, commands)
    assert runner.run(TAG, commands) == " ".join(["ActivityCompleted"] * 5)
    assert _inbox_ids(r) == [c["id"] for c in commands]
    assert [json.loads(e)["result"]["id"] for e in r.lrange(keys.inbox(TAG), 0, -1)] == [c["id"] for c in commands]
    assert published == [TAG]
    assert r.zcard(keys.activities_for(TAG, 16)) == 0 and r.hlen(keys.activity_commands_for(TAG, 16)) == 0
    # A lone command (the message before batches, and the timers' rescue) still runs as it did.
    _record(r, [command("x")])
    assert runner.run(TAG, command("x")) == "ActivityCompleted"
    assert _inbox_ids(r)[-1] == "x" and published == [TAG]  # the drive published before is still queued
    # ... and a duplicate of it (a rescue or redelivery) once it was reported is not run again.
    inbox = r.llen(keys.inbox(TAG))
    assert runner.run(TAG, command("x")) == "Gone"
    assert r.llen(keys.inbox(TAG)) == inbox and not r.exists(keys.activity_starts_for(TAG, 16))


def test_a_slow_batch_hands_back_what_it_has_not_started_and_reports_what_is_done(
    r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]
) -> None:
    RELEASE.clear()
    commands = [command("1"), command("2", "held"), command("3"), command("4")]
    _record(r, commands)
    said: list[str] = []
    thread = threading.Thread(target=lambda: said.append(runner.run(TAG, commands)))
    thread.start()
    try:
        # While "2" still runs: "1" is reported, "3" and "4" are back on the queue, one per message.
        deadline = time.monotonic() + 30
        while (_inbox_ids(r) != ["1"] or r.llen(settings.activity_queue) < 2) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _inbox_ids(r) == ["1"]
        assert messages(r, settings.activity_queue) == [[TAG, commands[2]], [TAG, commands[3]]]
        assert published == [TAG]
        # Kept alive while they are this batch's: all four had their overdue deadline pushed on.
        assert all(score > 1 for _, score in r.zrange(keys.activities_for(TAG, 16), 0, -1, withscores=True))
    finally:
        RELEASE.set()
        thread.join(30)
    assert said == ["ActivityCompleted ActivityCompleted HandedBack HandedBack"]
    assert _inbox_ids(r) == ["1", "2"]
    assert json.loads(r.lrange(keys.inbox(TAG), 1, 1)[0])["result"] == {"released": True}
    assert published == [TAG]  # the drive for "1" had not run yet: "2" waits for it
    # The handed-back ones stay recorded, so the timers run them should their messages be lost.
    left = {m.decode() for m in r.zrange(keys.activities_for(TAG, 16), 0, -1)}
    assert left == {activity_member(TAG, "3"), activity_member(TAG, "4")}
    assert r.hlen(keys.activity_commands_for(TAG, 16)) == 2


def test_a_call_outliving_its_timeout_in_a_batch_is_forgotten_and_the_rest_still_runs(
    r: redis.Redis, settings: Settings, runner: ActivityRunner, published: list[str]
) -> None:
    RELEASE.clear()
    commands = [command("1", "held", timeout_ms=300), command("2")]
    _record(r, commands)
    try:
        said = runner.run(TAG, commands).split()
    finally:
        RELEASE.set()
    assert said[0] == "TimedOut"  # its timer ends the task: nothing is reported, the rescue entry is gone
    assert "1" not in _inbox_ids(r) and activity_member(TAG, "1") not in {m.decode() for m in r.zrange(keys.activities_for(TAG, 16), 0, -1)}
    if said[1] == "HandedBack":  # the usual case: the batch was split while "1" ran
        assert messages(r, settings.activity_queue) == [[TAG, commands[1]]] and _inbox_ids(r) == []
    else:
        assert said[1] == "ActivityCompleted" and _inbox_ids(r) == ["2"] and published == [TAG]


def test_a_redelivered_batch_skips_what_was_reported_or_cancelled(r: redis.Redis, runner: ActivityRunner, published: list[str]) -> None:
    """Celery delivers a batch again when its worker died mid-batch: only the unfinished calls run again."""
    commands = [command(str(i)) for i in range(4)]
    _record(r, commands)
    r.zrem(keys.activities_for(TAG, 16), activity_member(TAG, "0"))  # reported before the worker died
    r.hdel(keys.activity_commands_for(TAG, 16), activity_member(TAG, "0"))
    r.zrem(keys.activities_for(TAG, 16), activity_member(TAG, "2"))  # cancelled by a later decision
    r.hdel(keys.activity_commands_for(TAG, 16), activity_member(TAG, "2"))
    assert runner.run(TAG, commands) == "Gone ActivityCompleted Gone ActivityCompleted"
    assert _inbox_ids(r) == ["1", "3"] and published == [TAG]
    assert r.zcard(keys.activities_for(TAG, 16)) == 0 and r.hlen(keys.activity_commands_for(TAG, 16)) == 0
