"""The contract between advance() and the engine (common/interpreter/model.py), clause by clause."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from common.fdl import parse_definition
from common.interpreter import Decision, Limits, advance
from tests.flowcases import NOW, FlowCase, load_cases, run_case

CASES = load_cases()
WITH_ENGINE = [c for c in CASES if not c.pure]


def start(definition: str, exec_input: Any = None, name: str = "exec1", **kwargs: Any) -> tuple[Any, Decision]:
    flow = parse_definition(definition)
    event = {"t": "Started", "input": exec_input if exec_input is not None else {}, "name": name, "flow": "f"}
    return flow, advance(flow, None, [event], NOW, **kwargs)


def types(decision: Decision) -> list[str]:
    return [e.type for e in decision.history]


NEW_TASK = """Type: StateMachine
StartAt: T
States:
  - Type: Task
    Name: T
    Action: FC:InvokeFunction
    TaskMode: {mode}
    Timeout: 10
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/f/LATEST
      body:
        {token}
        n.$: $Input.n
    Retry:
      - Errors: [E]
        MaxAttempts: 1
        IntervalSeconds: 1
    End: true
"""

OLD_CALLBACK = """version: v1
type: flow
steps:
  - type: task
    name: t
    resourceArn: acs:fc:cn-hangzhou:123:services/svc.prod/functions/fn
    pattern: waitForCallback
    timeoutSeconds: 60
    inputMappings:
      - target: token
        source: $context.task.token
    retry:
      - errors: [E]
        intervalSeconds: 1
"""


# ---------------------------------------------------------------- state


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_state_through_json_behaves_the_same(case: FlowCase) -> None:
    """advance(flow, json.loads(json.dumps(state)), ...) is advance(flow, state, ...), at every step of every fixture."""
    assert run_case(case, roundtrip=True).history == run_case(case, roundtrip=False).history


@pytest.mark.parametrize("case", WITH_ENGINE, ids=[c.name for c in WITH_ENGINE])
def test_every_event_delivered_twice_changes_nothing_the_second_time(case: FlowCase) -> None:
    assert run_case(case, duplicates=True).history == run_case(case).history


@pytest.mark.parametrize("case", WITH_ENGINE, ids=[c.name for c in WITH_ENGINE])
def test_advance_never_mutates_its_arguments(case: FlowCase) -> None:
    flow = parse_definition(case.definition)
    previous: dict[str, Any] | None = None
    for step in run_case(case).steps:
        events = copy.deepcopy(step.events)
        before = copy.deepcopy(previous)
        decision = advance(flow, previous, events, step.now)
        assert previous == before and events == step.events
        previous = decision.state


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_state_says_whether_the_execution_ever_ran_an_activity(case: FlowCase) -> None:
    """`tk` tells the driver whether an ending execution may have a tasks or children hash to see to
    (worker/driver.py): 1 from the first activity asked for (one a decision asks for and cancels at once
    counts too: a harmless yes) and kept by every later decision; 0 in a flow of pure states."""
    transcript = run_case(case)
    seen = 0
    for step in transcript.steps:
        ran = any(c["t"] == "RunActivity" for c in step.decision.commands)
        assert step.decision.state["tk"] >= max(seen, int(ran)), step
        seen = step.decision.state["tk"]


def test_a_flow_of_pure_states_never_ran_an_activity() -> None:
    _, decision = start("Type: StateMachine\nStartAt: A\nStates:\n  - {Type: Pass, Name: A, Next: B}\n  - {Type: Pass, Name: B, End: true}\n")
    assert decision.status == "Succeeded" and decision.state["tk"] == 0


def test_abort_keeps_what_the_state_says_of_activities() -> None:
    from common.interpreter import abort

    assert abort(None, NOW, "E", "c").state["tk"] == 0
    assert abort({"status": "Running", "seq": 3, "tk": 1, "waits": {}}, NOW, "E", "c").state["tk"] == 1
    assert "tk" not in abort({"status": "Running", "seq": 3, "waits": {}}, NOW, "E", "c").state  # older: unknown


def test_run_activity_for_a_new_syntax_function() -> None:
    _, d = start(NEW_TASK.format(mode="RequestComplete", token=""), {"n": 3})
    run, timer = d.commands
    assert run == {
        "t": "RunActivity", "id": "2", "step": "T", "attempt": 1, "kind": "fc",
        "resource": "acs:fc:cn-hangzhou:123:functions/f/LATEST", "action": "FC:InvokeFunction",
        "target": {"region": "cn-hangzhou", "account": "123", "service": None, "function": "f", "qualifier": "LATEST"},
        "input": {"n": 3}, "params": {"resourceArn": "acs:fc:cn-hangzhou:123:functions/f/LATEST", "body": {"n": 3}},
        "mode": "RequestComplete", "timeout_ms": 10000, "token": None,
    }  # fmt: skip
    assert timer == {"t": "StartTimer", "id": "2/timeout", "fire_at": NOW + 10000}


def test_task_token_in_callback_mode_comes_from_token_for_and_changes_per_attempt() -> None:
    def token_for(activity_id: str) -> str:
        return f"secret:{activity_id}"

    flow, d = start(NEW_TASK.format(mode="WaitForCustomCallback", token="token.$: $Context.Current.TaskToken"), {"n": 1}, token_for=token_for)
    run = d.commands[0]
    assert run["token"] == "secret:2" and run["params"]["body"]["token"] == "secret:2" and run["mode"] == "WaitForCustomCallback"
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": "2", "result": None}], NOW + 1, token_for=token_for)
    assert types(d) == ["TaskStarted", "TaskSubmitted"] and d.commands == []
    d = advance(flow, d.state, [{"t": "TaskReported", "id": "2", "ok": False, "error": "E", "cause": "c"}], NOW + 2, token_for=token_for)
    assert [c["t"] for c in d.commands] == ["StartTimer", "CancelTimer"]  # the back-off; the timeout is no longer needed
    d = advance(flow, d.state, [{"t": "TimerFired", "id": "2/retry/1"}], NOW + 1002, token_for=token_for)
    run = d.commands[0]
    assert run["id"] == "2/2" and run["attempt"] == 2 and run["token"] == "secret:2/2" and run["params"]["body"]["token"] == "secret:2/2"


def test_old_syntax_token_is_mapped_again_for_each_attempt() -> None:
    flow, d = start(OLD_CALLBACK)
    run = d.commands[0]
    assert run["input"] == {"token": "token-2"} and run["token"] == "token-2" and run["mode"] == "WaitForCustomCallback"
    assert run["kind"] == "fc" and run["target"] == {"region": "cn-hangzhou", "account": "123", "service": "svc", "function": "fn", "qualifier": "prod"}
    assert run["action"] is None and run["params"] is None and run["timeout_ms"] == 60000
    d = advance(flow, d.state, [{"t": "ActivityFailed", "id": "2", "error": "E", "cause": ""}], NOW + 1)
    assert types(d) == ["TaskStarted", "TaskSubmitFailed"]
    d = advance(flow, d.state, [{"t": "TimerFired", "id": "2/retry/1"}], NOW + 1001)
    assert d.commands[0]["input"] == {"token": "token-2/2"} and d.commands[0]["token"] == "token-2/2"


@pytest.mark.parametrize(
    "arn, kind, target",
    [
        ("acs:fnf:::flow/child", "flow", {"region": "", "account": "", "flow": "child"}),
        ("acs:mns:::/topics/t/messages", "mns", {}),
        ("acs:oss:::bucket", "other", {}),
    ],
)
def test_old_resource_kinds(arn: str, kind: str, target: dict[str, Any]) -> None:
    _, d = start(f"version: v1\ntype: flow\nsteps:\n  - {{type: task, name: t, resourceArn: '{arn}', serviceParams: {{Input: $, Name: $.n, Fixed: 1}}}}\n", {"n": "x"})
    run = d.commands[0]
    assert run["kind"] == kind and run["resource"] == arn and run["target"] == target and run["mode"] == "RequestComplete"
    assert run["params"] == {"Input": {"n": "x"}, "Name": "x", "Fixed": 1}


@pytest.mark.parametrize(
    "action, params, kind, resource",
    [
        ("HTTP:Request", "{url: 'https://x'}", "http", "HTTP:Request"),
        ("FNF:StartExecution", "{resourceArn: 'acs:fnf:cn-hangzhou:1:flow/child'}", "flow", "acs:fnf:cn-hangzhou:1:flow/child"),
        ("ECS:DescribeInstances", "{RegionId: cn-hangzhou}", "other", "ECS:DescribeInstances"),
        ("FC:InvokeFunction", "{resourceArn.$: $Input.arn}", "fc", "acs:fc:cn-hangzhou:1:functions/g"),
    ],
)
def test_new_resource_kinds(action: str, params: str, kind: str, resource: str) -> None:
    definition = f"Type: StateMachine\nStartAt: T\nStates:\n  - {{Type: Task, Name: T, Action: '{action}', Parameters: {params}, End: true}}\n"
    _, d = start(definition, {"arn": "acs:fc:cn-hangzhou:1:functions/g"})
    run = d.commands[0]
    assert run["kind"] == kind and run["resource"] == resource and run["action"] == action and run["timeout_ms"] is None


def test_a_computed_arn_that_is_not_one_fails_the_task() -> None:
    definition = "Type: StateMachine\nStartAt: T\nStates:\n  - {Type: Task, Name: T, Action: 'FC:InvokeFunction', Parameters: {resourceArn.$: $Input.arn}, End: true}\n"
    _, d = start(definition, {"arn": "nope"})
    assert d.status.value == "Failed" and d.error == "FnF.RuntimeError" and "not a Function Compute ARN" in (d.cause or "")


# ---------------------------------------------------------------- events


def test_the_task_token_exists_only_in_callback_modes() -> None:
    _, d = start(NEW_TASK.format(mode="RequestComplete", token="token.$: $Context.Current.TaskToken"))
    assert d.error == "FnF.RuntimeError" and "TaskToken" in (d.cause or "")


def test_results_for_unknown_ids_and_of_the_wrong_kind_are_dropped() -> None:
    flow, d = start(NEW_TASK.format(mode="RequestComplete", token=""), {"n": 1})
    assert d.status.value == "Running"
    for event in [
        {"t": "ActivityCompleted", "id": "99", "result": {}},
        {"t": "TimerFired", "id": "2"},  # an activity id reported as a timer
        {"t": "ActivityCompleted", "id": "2/timeout", "result": {}},  # a timer id reported as an activity
        {"t": "TaskReported", "id": "2", "ok": True, "output": {}},  # not a callback task
        {"t": "NoSuchEvent", "id": "2"},
        {"t": "ActivityCompleted", "id": 2, "result": {}},  # ids are strings
        "not even a dict",
    ]:
        again = advance(flow, d.state, [event], NOW + 1)  # type: ignore[list-item]
        assert again.history == [] and again.commands == [] and again.state == d.state, event


def test_a_report_may_come_before_the_submission_result() -> None:
    flow, d = start(NEW_TASK.format(mode="WaitForCustomCallback", token="token.$: $Context.Current.TaskToken"), {"n": 1})
    d = advance(flow, d.state, [{"t": "TaskReported", "id": "2", "ok": True, "output": '{"done": 1}'}], NOW + 1)
    assert d.status.value == "Succeeded" and d.output == {"done": 1}
    assert types(d)[:2] == ["TaskStarted", "TaskSucceeded"]
    late = advance(flow, d.state, [{"t": "ActivityCompleted", "id": "2", "result": None}], NOW + 2)
    assert late.history == [] and late.commands == []


def test_a_submission_failure_after_the_submission_succeeded_is_dropped() -> None:
    flow, d = start(NEW_TASK.format(mode="WaitForCustomCallback", token="token.$: $Context.Current.TaskToken"), {"n": 1})
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": "2", "result": None}], NOW + 1)
    again = advance(flow, d.state, [{"t": "ActivityFailed", "id": "2", "error": "X", "cause": ""}], NOW + 2)
    assert again.history == [] and again.state == d.state


def test_stop_before_start_waits_for_the_start_and_a_second_stop_changes_nothing() -> None:
    flow = parse_definition(NEW_TASK.format(mode="RequestComplete", token=""))
    early = advance(flow, None, [{"t": "StopRequested", "error": "E", "cause": "C"}], NOW)
    assert early.history == [] and early.commands == [] and early.status.value == "Starting"
    late = advance(flow, early.state, [{"t": "Started", "input": {"n": 1}, "name": "e", "flow": "f"}], NOW + 1)
    assert types(late) == ["ExecutionStarted", "ExecutionStopped"] and (late.error, late.cause) == ("E", "C") and late.commands == []
    _, d = start(NEW_TASK.format(mode="RequestComplete", token=""), {"n": 1})
    stopped = advance(flow, d.state, [{"t": "StopRequested", "error": "ByUser", "cause": "why"}], NOW + 1)
    assert types(stopped) == ["ExecutionStopped"] and stopped.status.value == "Stopped"
    assert stopped.history[0].detail == {"error": "ByUser", "cause": "why"}
    assert sorted(c["t"] for c in stopped.commands) == ["CancelActivity", "CancelTimer"]
    again = advance(flow, stopped.state, [{"t": "StopRequested", "error": "Again", "cause": ""}], NOW + 2)
    assert again.history == [] and again.commands == []


@pytest.mark.parametrize("case", WITH_ENGINE, ids=[c.name for c in WITH_ENGINE])
def test_the_ending_decision_only_cancels(case: FlowCase) -> None:
    ending = run_case(case).ended
    assert {c["t"] for c in ending.commands} <= {"CancelTimer", "CancelActivity"}


# ---------------------------------------------------------------- limits and determinism


def test_history_limit_is_an_argument_and_the_failure_is_the_last_event() -> None:
    loop = "Type: StateMachine\nStartAt: A\nStates:\n  - {Type: Pass, Name: A, Next: B}\n  - {Type: Pass, Name: B, Next: A}\n"
    _, d = start(loop, limits=Limits(max_history_events=20))
    assert d.status.value == "Failed" and d.error == "FnF.HistoryLimitExceeded"
    assert len(d.history) == 20 and d.history[-1].type == "ExecutionFailed" and d.history[-1].id == 20


def test_state_size_limit_is_an_argument() -> None:
    _, d = start("Type: StateMachine\nStartAt: A\nStates:\n  - {Type: Pass, Name: A, End: true, OutputConstructor: {x: '0123456789'}}\n",
                 limits=Limits(max_state_bytes=10))  # fmt: skip
    assert d.error == "FnF.StateSizeExceeded"
    _, d = start("version: v1\ntype: flow\nsteps:\n  - {type: pass, name: a}\n", {"k": "v" * 50}, limits=Limits(max_old_state_bytes=40))
    assert d.error == "FnF.StateSizeExceeded"


def test_uuid_is_deterministic_per_execution() -> None:
    definition = "Type: StateMachine\nStartAt: A\nStates:\n  - {Type: Pass, Name: A, End: true, OutputConstructor: {u.$: uuid(), r.$: 'randomInt(0, 1000000)'}}\n"
    one, two, other = (start(definition, name=n)[1].output for n in ("exec1", "exec1", "exec2"))
    assert one == two and one["u"] != other["u"]


def test_schedule_event_ids_link_branches_to_their_parallel() -> None:
    case = next(c for c in CASES if c.name == "new_parallel_tasks")
    history = {e.id: e for e in run_case(case).history}
    started = next(e for e in history.values() if e.type == "StepStarted" and e.step == "Both")
    entered = [e for e in history.values() if e.type == "BranchEntered"]
    assert [e.sched for e in entered] == [started.id, started.id]
    exits = [e for e in history.values() if e.type == "BranchExited"]
    done = next(e for e in history.values() if e.type == "StepSucceeded" and e.step == "Both")
    assert done.sched == exits[-1].id  # the join is caused by the branch that finished last
    for e in history.values():
        if e.type == "TaskStarted":
            assert history[e.sched].type == "TaskScheduled" and history[e.sched].step == e.step


def test_event_details() -> None:
    flow, d = start(NEW_TASK.format(mode="RequestComplete", token=""), {"n": 1})
    scheduled = d.history[-1]
    assert scheduled.type == "TaskScheduled"
    assert scheduled.detail == {
        "resource": "acs:fc:cn-hangzhou:123:functions/f/LATEST", "mode": "RequestComplete", "input": {"n": 1}, "attempt": 1,
        "parameters": {"resourceArn": "acs:fc:cn-hangzhou:123:functions/f/LATEST", "body": {"n": 1}},
    }  # fmt: skip
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": "2", "result": '{"r": 1}'}], NOW + 1)
    assert [(e.type, e.detail) for e in d.history] == [
        ("TaskStarted", {"attempt": 1}),
        ("TaskSucceeded", {"output": {"Body": {"r": 1}}}),
        ("StepSucceeded", {"output": {"Body": {"r": 1}}}),
        ("StepExited", {"output": {"Body": {"r": 1}}}),
        ("ExecutionSucceeded", {"output": {"Body": {"r": 1}}}),
    ]
    assert json.dumps(d.state)
