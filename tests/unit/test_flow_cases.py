"""Every flow case of tests/fixtures/flows through the pure interpreter: end, output or error, history."""
from __future__ import annotations

import pytest

from common.fdl import parse_definition
from common.interpreter import advance
from tests.flowcases import FlowCase, load_cases

CASES = load_cases()
NOW = 1_700_000_000_000


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case(case: FlowCase) -> None:
    flow = parse_definition(case.definition)
    started = {"t": "Started", "input": case.input, "name": "exec1", "flow": "flow1"}
    decision = advance(flow, None, [started], NOW)
    expect = case.expect
    assert decision.status.value == expect["status"], (decision.error, decision.cause)
    if "output" in expect:
        assert decision.output == expect["output"]
    if "error" in expect:
        assert decision.error == expect["error"]
    if "cause" in expect:
        assert decision.cause == expect["cause"]
    if "history" in expect:
        assert [[e.type, e.step] for e in decision.history] == expect["history"]
    # Event ids count from 1, and in a single thread each event is scheduled by the one before it.
    assert [e.id for e in decision.history] == list(range(1, len(decision.history) + 1))
    assert decision.history[-1].type.startswith("Execution")
    assert not decision.commands


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case_is_deterministic(case: FlowCase) -> None:
    flow = parse_definition(case.definition)
    started = {"t": "Started", "input": case.input, "name": "exec1", "flow": "flow1"}
    first = advance(flow, None, [started], NOW)
    again = advance(parse_definition(case.definition), None, [started], NOW)
    assert first == again
    # Replaying the events on the end state changes nothing: late events are dropped.
    replay = advance(flow, first.state, [started], NOW + 5)
    assert replay.history == [] and replay.state == first.state


def test_there_are_cases_for_both_syntaxes() -> None:
    syntaxes = {parse_definition(c.definition).syntax for c in CASES}
    assert syntaxes == {"old", "new"}
