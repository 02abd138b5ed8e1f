"""Every flow case of tests/fixtures/flows through the pure interpreter, its commands answered by a simulated engine."""
from __future__ import annotations

import itertools
import json

import pytest

from common.fdl import parse_definition
from common.interpreter import advance
from tests.flowcases import NOW, FlowCase, load_cases, run_case

CASES = load_cases()
TERMINAL_EVENTS = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped", "ExecutionTimedOut"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case(case: FlowCase) -> None:
    run = run_case(case)
    end, expect = run.final, case.expect
    assert end.status.value == expect["status"], (end.error, end.cause)
    if "output" in expect:
        assert end.output == expect["output"]
    if "error" in expect:
        assert end.error == expect["error"]
    if "cause" in expect:
        assert end.cause == expect["cause"]
    if "history" in expect:
        assert [[e.type, e.step] for e in run.history] == expect["history"]
    if "commands" in expect:
        assert [[c["t"], c["id"]] for c in run.commands] == expect["commands"]
    if "time" in expect:
        assert (run.clock - NOW) / 1000 == expect["time"]
    # EventIds count from 1; each event is caused by an earlier one; one terminal event, the last.
    assert [e.id for e in run.history] == list(range(1, len(run.history) + 1))
    assert all(0 <= e.sched < e.id for e in run.history)
    assert [e.type for e in run.history if e.type in TERMINAL_EVENTS] == [run.history[-1].type]
    json.dumps([e.detail for e in run.history])  # every EventDetail is JSON


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_marker_says_what_the_flow_needs(case: FlowCase) -> None:
    """`engine:` lists exactly what the flow asks of the engine, so the pure ones can run end to end now."""
    run = run_case(case)
    needs = set()
    if any(c["t"] == "RunActivity" for c in run.commands):
        needs.add("activities")
    if any(c["t"] == "StartTimer" for c in run.commands):
        needs.add("timers")
    if case.stop_at is not None:
        needs.add("stop")
    assert needs == set(case.engine)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case_replays_the_same_in_batches(case: FlowCase) -> None:
    """Feeding the same events in bigger batches (same clock per batch) gives the same state and history."""
    run = run_case(case)
    flow = parse_definition(case.definition)
    state, history = None, []
    for now, steps in itertools.groupby(run.steps, key=lambda s: s.now):
        decision = advance(flow, state, [e for s in steps for e in s.events], now)
        state = decision.state
        history.extend(decision.history)
    assert history == run.history
    assert state == run.steps[-1].decision.state


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case_is_deterministic(case: FlowCase) -> None:
    first, again = run_case(case), run_case(case)
    assert first.history == again.history and first.commands == again.commands
    # Replaying the first event on the end state changes nothing: late events are dropped.
    flow = parse_definition(case.definition)
    replay = advance(flow, first.final.state, first.steps[0].events, NOW + 5)
    assert replay.history == [] and replay.commands == [] and replay.state == first.final.state


def test_there_are_cases_for_both_syntaxes_and_every_state_type() -> None:
    flows = [parse_definition(c.definition) for c in CASES]
    assert {f.syntax for f in flows} == {"old", "new"}
    seen = {(f.syntax, s.type) for f in flows for scope in f.scopes.values() for s in scope.states.values()}
    old = {("old", t) for t in ("task", "pass", "choice", "parallel", "foreach", "wait", "succeed", "fail")}
    new = {("new", t) for t in ("task", "pass", "choice", "parallel", "map", "wait", "succeed", "fail")}
    assert old | new <= seen, sorted((old | new) - seen)
    assert len(CASES) >= 60


def test_a_stop_before_the_start_ends_stopped_without_running_a_state() -> None:
    from worker.driver import stop_first_if_new

    flow = parse_definition("Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n")
    started = {"t": "Started", "input": {}, "name": "e", "flow": "f"}
    stop = {"t": "StopRequested", "error": "Halt", "cause": "early"}
    ordered = stop_first_if_new("", [started, stop])
    assert ordered == [stop, started]
    decision = advance(flow, None, ordered, NOW)
    assert decision.status.value == "Stopped" and (decision.error, decision.cause) == ("Halt", "early")
    assert [e.type for e in decision.history] == ["ExecutionStarted", "ExecutionStopped"]
    # Once an execution has been driven, events keep their order.
    assert stop_first_if_new('{"v": 1}', [started, stop]) == [started, stop]
