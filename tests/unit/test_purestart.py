"""A pure flow run to its end at its start (common/purestart.py): the same end a worker's first drive writes,
and the workers keep every flow that is not pure, that does not end in one decision, or that is over the budget."""
from __future__ import annotations

import json

import pytest

from common.claims import started_event
from common.fdl import parse_definition
from common.interpreter import Status, advance
from common.interpreter.model import Errors, Limits
from common.purestart import end_fields, is_pure, pure_flow, run_at_start
from common.records import decode_history, dumps
from tests.flowcases import NOW, FlowCase, load_cases

LIMITS = Limits()
CASES = load_cases()


def pass_flow(states: int) -> str:
    lines = ["Type: StateMachine", "SpecVersion: v1", "StartAt: S0", "States:"]
    for i in range(states):
        lines += ["  - Type: Pass", f"    Name: S{i}", "    OutputConstructor:", f"      n: {i}"]
        lines += ["    End: true"] if i == states - 1 else [f"    Next: S{i + 1}"]
    return "\n".join(lines) + "\n"


LOOP = """Type: StateMachine
SpecVersion: v1
StartAt: Count
States:
  - Type: Pass
    Name: Count
    Next: Again
  - Type: Choice
    Name: Again
    Branches:
      - Condition: $Input.never == 1
        Next: Done
    Default: Count
  - Type: Succeed
    Name: Done
"""
TIMEOUT = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nTimeout: 30\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_flow_case_runs_at_its_start_exactly_as_a_workers_first_drive(case: FlowCase) -> None:
    flow = parse_definition(case.definition)
    event = started_event(case.input, "exec1", case.flow_name)
    drive = advance(flow, None, [json.loads(dumps(event))], NOW, limits=LIMITS)
    ended = run_at_start(flow, event, NOW, LIMITS, budget=LIMITS.max_history_events)
    if not is_pure(flow):
        assert ended is None  # the workers run it: a task, a wait, a distributed Map
        return
    if not drive.ended or drive.commands:
        assert ended is None  # pure, yet not over in one decision without commands (a flow timeout's timer)
        return
    assert case.pure, f"{case.name}: is_pure says pure, the fixture says it needs {sorted(case.engine)}"
    assert ended is not None
    fields = dict(zip(ended.fields[::2], ended.fields[1::2], strict=True))
    assert fields == dict(zip(end_fields(drive, NOW)[::2], end_fields(drive, NOW)[1::2], strict=True)) | {
        "state": dumps(drive.state), "hseq": str(len(drive.history)),
    }
    assert [e.to_json() for e in decode_history([ended.history_chunk])] == [e.to_json() for e in drive.history]
    assert ended.events == tuple(e.type for e in drive.history)
    assert fields["status"] == case.expect["status"]


def test_the_fixtures_hold_pure_flows_of_every_end() -> None:
    """The test above is not vacuous: pure flows of the fixtures run at their start, ending each way."""
    ends = set()
    for case in CASES:
        flow = parse_definition(case.definition)
        ended = run_at_start(flow, started_event(case.input, "exec1", case.flow_name), NOW, LIMITS, budget=5000)
        if ended is not None:
            ends.add(dict(zip(ended.fields[::2], ended.fields[1::2], strict=True))["status"])
    assert ends >= {Status.SUCCEEDED.value, Status.FAILED.value}


def test_a_ten_state_pass_flow_ends_succeeded_with_its_whole_history() -> None:
    flow = parse_definition(pass_flow(10))
    ended = run_at_start(flow, started_event({"a": 1}, "x", "f"), NOW, LIMITS, budget=500)
    assert ended is not None
    fields = dict(zip(ended.fields[::2], ended.fields[1::2], strict=True))
    assert fields["status"] == "Succeeded" and json.loads(fields["output"]) == {"n": 9} and fields["stopped"] == str(NOW)
    history = decode_history([ended.history_chunk])
    assert [e.id for e in history] == list(range(1, len(history) + 1)) and fields["hseq"] == str(len(history))
    assert history[0].type == "ExecutionStarted" and history[-1].type == "ExecutionSucceeded"
    assert json.loads(fields["state"])["tk"] == 0  # no activity ran: its end has no tasks hash to see to


def test_over_the_budget_the_workers_run_it() -> None:
    flow = parse_definition(pass_flow(10))
    whole = run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=500)
    assert whole is not None
    events = len(decode_history([whole.history_chunk]))
    assert run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=events) is not None
    assert run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=events - 1) is None
    assert run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=0) is None


def test_a_loop_is_left_to_the_workers_but_a_loop_over_the_executions_own_limit_fails_as_it_would_there() -> None:
    flow = parse_definition(LOOP)
    assert is_pure(flow)
    assert run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=500) is None  # the budget, not the limit
    small = Limits(max_history_events=50)
    ended = run_at_start(flow, started_event({}, "x", "f"), NOW, small, budget=500)
    assert ended is not None
    fields = dict(zip(ended.fields[::2], ended.fields[1::2], strict=True))
    drive = advance(flow, None, [started_event({}, "x", "f")], NOW, limits=small)
    assert fields["status"] == "Failed" and fields["error"] == Errors.HISTORY_LIMIT == drive.error


def test_a_flow_timeout_of_a_flow_ended_in_one_decision_needs_no_timer_at_its_start_either() -> None:
    flow = parse_definition(TIMEOUT)
    assert is_pure(flow)
    drive = advance(flow, None, [started_event({}, "x", "f")], NOW, limits=LIMITS)
    assert drive.ended and not drive.commands  # the worker arms no timer either: the flow ended first
    assert run_at_start(flow, started_event({}, "x", "f"), NOW, LIMITS, budget=500) is not None


def test_pure_flow_remembers_by_definition_id_and_refuses_what_is_not_pure() -> None:
    text = pass_flow(3)
    first = pure_flow("test-def-pure", text)
    assert first is not None and pure_flow("test-def-pure", "not read again") is first
    task = "Type: StateMachine\nSpecVersion: v1\nStartAt: T\nStates:\n  - Type: Task\n    Name: T\n    Action: FC:InvokeFunction\n    End: true\n"
    assert pure_flow("test-def-task", task) is None
    assert pure_flow("test-def-broken", "{not: [a flow") is None
