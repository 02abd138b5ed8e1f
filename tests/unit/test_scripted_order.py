"""tests/scripted.py reads a call's place in its script from the history; on every fixture that place is the
one the simulated engine (tests/flowcases.py scripted()) gives it, and a submission is found where it happened."""
from __future__ import annotations

import pytest

from tests.flowcases import FlowCase, load_cases, run_case
from tests.scripted import Event, call_index, scheduled_event, script_key, submitted

CASES = [c for c in load_cases() if "activities" in c.engine]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_history_gives_each_call_its_simulated_place(case: FlowCase) -> None:
    run = run_case(case)
    events = [Event(e.id, e.sched, e.type, e.step, e.detail) for e in run.history]
    counts: dict[str, int] = {}
    calls = [c for c in run.commands if c["t"] == "RunActivity"]
    assert calls
    for cmd in calls:
        key = script_key(case.activities, cmd["step"], cmd["resource"])
        expected = counts.get(key, 0)
        counts[key] = expected + 1
        mine = scheduled_event(events, cmd["id"])
        assert mine is not None and mine.step == cmd["step"] and mine.detail["resource"] == cmd["resource"], cmd["id"]
        assert call_index(events, mine, lambda e: script_key(case.activities, e.step, e.detail["resource"])) == expected
        # Submitted: the simulated engine's ActivityCompleted for this call produced a TaskSubmitted.
        expected_submitted = any(
            s.events[0]["t"] == "ActivityCompleted" and s.events[0]["id"] == cmd["id"]
            and any(h.type == "TaskSubmitted" for h in s.decision.history)
            for s in run.steps
        )  # fmt: skip
        assert submitted(events, mine) == expected_submitted, cmd["id"]


def test_calls_issued_together_keep_their_order() -> None:
    """Map's first two calls go out in one decision; the second is the second call whatever lands first."""
    case = next(c for c in CASES if c.name == "new_map_concurrency")
    events = [Event(e.id, e.sched, e.type, e.step, e.detail) for e in run_case(case).history]
    ids = [c["id"] for c in run_case(case).commands if c["t"] == "RunActivity"]

    def key(e: Event) -> str:
        return str(e.detail["resource"])

    places = []
    for cid in ids:
        mine = scheduled_event(events, cid)
        assert mine is not None
        places.append(call_index(events, mine, key))
    assert places == [0, 1, 2]
