"""Functions-file bindings for any task resource (MNS, ECS, HTTP:Request, child flows), OpenFnF's context
additions, and what the activity runner reports back (real Redis for the inbox)."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from common import keys
from common.settings import Settings
from worker.activities import UNSUPPORTED, ActivityRunner, activity_member
from worker.functions import UNKNOWN_FUNCTION, Binding, Functions
from worker.outcomes import Outcome

TAG = keys.execution_tag("3f0c-flow-id", "exec-a")
HERE = "tests.integration.test_bound_resources"


def context_echo(event: bytes, context: Any) -> dict[str, Any]:
    """What a bound handler sees."""
    return {
        "event": json.loads(event), "resource": context.resource, "step": context.step, "task_id": context.task_id,
        "flow_id": context.flow_id, "execution_name": context.execution_name, "task_token": context.task_token,
        "function": context.function.name, "region": context.region, "account": context.account_id,
    }  # fmt: skip


def sleeps(event: bytes, context: Any) -> None:
    """Outlives any short timeout."""
    time.sleep(2)


def command(kind: str, resource: str, **extra: Any) -> dict[str, Any]:
    """A RunActivity command as the interpreter issues it (common/interpreter/model.py)."""
    base = {
        "t": "RunActivity", "id": "5/2", "step": "Notify", "attempt": 2, "kind": kind, "resource": resource, "action": None,
        "target": {}, "input": {"order": 7}, "params": None, "mode": "RequestComplete", "timeout_ms": None, "token": None,
    }  # fmt: skip
    return {**base, **extra}


class Recorder:
    """Stands in for the drive publisher and the child starter."""

    def __init__(self) -> None:
        self.drives: list[str] = []
        self.children: list[dict[str, Any]] = []

    def child(self, tag: str, cmd: dict[str, Any]) -> Outcome:
        self.children.append(cmd)
        return Outcome.ok({"FlowName": "real", "ExecutionName": "child"})


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def runner(r: redis.Redis, rec: Recorder) -> ActivityRunner:
    bindings = [
        Binding("acs:mns:*:*:/topics/approvals/*", python=f"{HERE}:context_echo"),
        Binding("HTTP:Request", python=f"{HERE}:context_echo"),
        Binding("ECS:*", python=f"{HERE}:context_echo"),
        Binding("acs:fnf:*:*:flow/mocked", python=f"{HERE}:context_echo"),
        Binding("acs:fc:*:*:functions/echo/*", python=f"{HERE}:context_echo"),
        Binding("acs:fc:*:*:functions/sleeps/*", python=f"{HERE}:sleeps"),
    ]
    return ActivityRunner(r, Settings(), Functions(bindings), rec.drives.append, rec.child)


@pytest.mark.parametrize(
    "kind, resource, function, region, account",
    [
        ("mns", "acs:mns:cn-hangzhou:123:/topics/approvals/messages", "messages", "cn-hangzhou", "123"),
        ("http", "HTTP:Request", "HTTP:Request", "", ""),
        ("other", "ECS:DescribeInstances", "ECS:DescribeInstances", "", ""),
        ("flow", "acs:fnf:::flow/mocked", "mocked", "", ""),
        ("fc", "acs:fc:cn-hangzhou:123:functions/echo/LATEST", "echo", "cn-hangzhou", "123"),
    ],
)
def test_a_binding_answers_any_kind_of_resource(runner: ActivityRunner, rec: Recorder, kind: str, resource: str, function: str, region: str, account: str) -> None:
    out = runner.execute(TAG, command(kind, resource))
    assert out.succeeded, (out.error, out.cause)
    assert out.result == {
        "event": {"order": 7}, "resource": resource, "step": "Notify", "task_id": "5/2", "flow_id": "3f0c-flow-id",
        "execution_name": "exec-a", "task_token": "", "function": function, "region": region, "account": account,
    }  # fmt: skip
    assert rec.children == []  # a bound child flow is not started


@pytest.mark.parametrize("kind, resource", [("mns", "acs:mns:::/topics/approvals/messages"), ("other", "ECS:DescribeInstances")])
def test_parameters_body_is_the_event_when_given(runner: ActivityRunner, kind: str, resource: str) -> None:
    out = runner.execute(TAG, command(kind, resource, params={"body": {"b": 1}, "RegionId": "x"}))
    assert out.result["event"] == {"b": 1}
    without = runner.execute(TAG, command(kind, resource, params={"RegionId": "x"}))
    assert without.result["event"] == {"order": 7}


@pytest.mark.parametrize(
    "mode, token, seen",
    [("WaitForCustomCallback", "tok-1", "tok-1"), ("WaitForSystemCallback", "tok-2", "tok-2"), ("waitForCallback", "tok-3", "tok-3"), ("RequestComplete", None, "")],
)
def test_the_task_token_in_the_callback_modes_only(runner: ActivityRunner, mode: str, token: str | None, seen: str) -> None:
    out = runner.execute(TAG, command("mns", "acs:mns:::/topics/approvals/messages", mode=mode, token=token))
    assert out.result["task_token"] == seen


def test_without_a_binding_the_kinds_behave_as_before(runner: ActivityRunner, rec: Recorder) -> None:
    fc = runner.execute(TAG, command("fc", "acs:fc:::services/s/functions/unbound"))
    assert (fc.error, fc.cause) == (UNKNOWN_FUNCTION, "no function in the functions file matches acs:fc:::services/s/functions/unbound")
    mns = runner.execute(TAG, command("mns", "acs:mns:::/topics/other/messages"))
    assert mns.error == UNSUPPORTED and "acs:mns:::/topics/other/messages" in mns.cause
    child = runner.execute(TAG, command("flow", "acs:fnf:::flow/real"))
    assert child.result == {"FlowName": "real", "ExecutionName": "child"} and [c["resource"] for c in rec.children] == ["acs:fnf:::flow/real"]


def _running(r: redis.Redis, *recorded: dict[str, Any]) -> None:
    """The execution runs, and these commands are recorded as the dispatcher records them (a lone
    command no longer recorded is a duplicate message and not run)."""
    r.hset(keys.execution(TAG), "status", "Running")
    for c in recorded:
        r.hset(keys.activity_commands_for(TAG, 16), activity_member(TAG, c["id"]), json.dumps(c))
        r.zadd(keys.activities_for(TAG, 16), {activity_member(TAG, c["id"]): 1})


def test_results_of_bound_resources_are_delivered(r: redis.Redis, runner: ActivityRunner, rec: Recorder) -> None:
    cmd = command("other", "ECS:DescribeInstances", id="9")
    _running(r, cmd)
    assert runner.run(TAG, cmd) == "ActivityCompleted"
    (raw,) = r.lrange(keys.inbox(TAG), 0, -1)
    event = json.loads(raw)
    assert (event["t"], event["id"], event["result"]["resource"]) == ("ActivityCompleted", "9", "ECS:DescribeInstances")
    assert rec.drives == [TAG]


def test_a_call_outliving_its_task_timeout_is_left_to_the_timer(r: redis.Redis, runner: ActivityRunner, rec: Recorder) -> None:
    """The interpreter armed the task's timeout timer with the command; the call limit only frees the worker."""
    cmd = command("fc", "acs:fc:::functions/sleeps/LATEST", timeout_ms=200)
    _running(r, cmd)
    assert runner.run(TAG, cmd) == "TimedOut"
    assert r.llen(keys.inbox(TAG)) == 0 and rec.drives == []
