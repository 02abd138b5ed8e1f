"""Recorded histories (tests/golden/*.json) replayed through advance() reproduce the same history, commands and state."""
from __future__ import annotations

import json

import pytest

from common.fdl import parse_definition
from common.interpreter import advance
from tests.goldens import GOLDEN_DIR, RECORDED, path


@pytest.mark.parametrize("name", RECORDED)
def test_golden_history_replays(name: str) -> None:
    golden = json.loads(path(name).read_text(encoding="utf-8"))
    flow = parse_definition(golden["definition"])
    state = None
    for i, step in enumerate(golden["steps"]):
        decision = advance(flow, state, step["events"], step["now"])
        assert [e.to_json() for e in decision.history] == step["history"], f"step {i}: {step['events']}"
        assert decision.commands == step["commands"], f"step {i}: {step['events']}"
        state = json.loads(json.dumps(decision.state))
    assert state == golden["state"]


def test_every_recording_is_listed() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == sorted(RECORDED)
