"""With tracing off (no OTEL_* variables: the default), every tracing edge is a pass-through that
touches nothing of OpenTelemetry and changes nothing stored (issue 18)."""
from __future__ import annotations

from typing import Any

from common import tracing
from common.driverscripts import Acquired
from common.records import new_execution_fields
from worker import spans


def test_tracing_is_off_here_and_the_helpers_do_nothing() -> None:
    assert tracing.tracer is None
    assert tracing.span("x", {"a": 1}, parent="", link_current=True) is tracing.span("y")  # one shared no-op
    with tracing.span("x") as current:
        assert current is None
    headers = {"Content-Type": "application/json"}
    tracing.inject(headers)
    assert headers == {"Content-Type": "application/json"}
    assert tracing.traceparent() == "" and tracing.execution_started("f", "e") == ""
    tracing.request_action("StartExecution")
    tracing.annotate(None, {"a": 1})
    tracing.failed(None, "E")


def test_the_execution_record_is_unchanged_without_a_trace() -> None:
    args: dict[str, Any] = {
        "account": "1", "flow": "f", "raw_input": "{}", "def_id": "d",
        "qualifier": "", "callback": "", "started": 1,
    }  # fmt: skip
    off = new_execution_fields(**args)
    assert "tp" not in off[::2]
    on = new_execution_fields(**args, trace="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert on[:-2] == off and on[-2:] == ["tp", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"]


def test_the_worker_wrappers_call_straight_through() -> None:
    calls: list[tuple[Any, ...]] = []

    class Runner:
        state = None  # never touched while tracing is off

        @spans.traced_activity
        def execute(self, tag: str, command: dict[str, Any]) -> str:
            calls.append((tag, command))
            return "outcome"

        @spans.traced_decide
        def decide(self, tag: str, got: Acquired) -> str:
            calls.append((tag, got.token))
            return "round"

    runner = Runner()
    command = {"id": "3", "mode": "waitForCallback"}
    assert runner.execute("f/e", command) == "outcome" and runner.decide("f/e", Acquired(7)) == "round"
    assert calls == [("f/e", command), ("f/e", 7)]
    commands = [{"id": "1"}]
    assert spans.with_trace(commands) is commands  # no `tp` added to activity commands
    with spans.timer_spans(None, [{"tag": "f/e", "event": {}}]), spans.report_span(None, "f/e", "1", True):
        pass  # no Redis read (the client is None)
