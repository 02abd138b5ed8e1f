"""The execution page's view model (console/pages.py execution_model), built from recorded histories without I/O."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.interpreter.model import HistoryEvent
from common.tokens import parse_token
from console.views import HISTORY_PAGE, children, execution_model, script_json

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SECRET = "unit-test-token-secret"


def _model(name: str, upto: int | None = None, **kwargs: Any) -> dict[str, Any]:
    golden = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    events = [HistoryEvent.from_json(h) for step in golden["steps"] for h in step["history"]]
    events = [e for e in events if upto is None or e.id <= upto]
    flow = {"Id": "flow-1", "Name": name}
    fields = {"name": "exec-1", "status": "Running" if upto else "Succeeded"}
    options: dict[str, Any] = {"token_secret": SECRET, "may_report": True, "type_filter": "", "page": 1, "now": 1_700_000_100_000}
    options.update(kwargs)
    return execution_model(flow, fields, golden["definition"], events, **options)


def test_a_waiting_callback_task_gets_a_report_form_with_its_real_token() -> None:
    model = _model("old_task_callback", upto=6)
    assert [w["state"] for w in model["waiting"]] == ["approve"]
    ref = parse_token(SECRET, model["waiting"][0]["token"])
    assert (ref.flow_id, ref.execution, ref.task_id) == ("flow-1", "exec-1", "2")  # what the worker's token_for names


def test_no_report_form_for_a_key_that_may_not_report_or_once_the_task_is_done() -> None:
    assert _model("old_task_callback", upto=6, may_report=False)["waiting"] == []
    assert _model("old_task_callback")["waiting"] == []


def test_the_failing_state_and_its_error_are_found() -> None:
    model = _model("new_task_catch", upto=6)  # failed once, before its retry
    pay = next(s for s in model["states"] if s["name"] == "Pay")
    assert pay["status"] == "retried" and pay["error"] == "PaymentDeclined" and pay["cause"] == "card expired"
    done = _model("new_task_catch")
    assert {s["name"]: s["status"] for s in done["states"]} == {"Pay": "caught", "Refund": "succeeded"}


def test_history_is_paged_and_filtered_by_type() -> None:
    model = _model("new_parallel_retry", type_filter="StepEntered")
    assert model["history_total"] == len(model["history"]) == 5  # Both, then Steady and Flaky twice (the retry)
    assert {row["type"] for row in model["history"]} == {"StepEntered"}
    assert "TaskScheduled" in model["history_types"]
    assert model["history_pages"] == 1 and HISTORY_PAGE >= 5
    beyond = _model("new_parallel_retry", page=9)
    assert beyond["history_page"] == 1 and beyond["history"][0]["id"] == 1  # a page past the end shows the last one


def test_the_graph_and_its_colours_are_embedded_safely() -> None:
    model = _model("new_task_catch")
    graph = json.loads(str(model["graph_json"]))
    colours = json.loads(str(model["overlay_json"]))
    assert {n["label"] for n in graph["nodes"]} >= {"Pay", "Refund", "Done"}
    assert sorted(v for v in colours.values() if v) == ["caught", "not-reached", "not-reached", "succeeded"]
    assert "<" not in str(script_json({"name": "</script><script>alert(1)</script>"}))


def test_child_executions_are_named_as_the_worker_names_them() -> None:
    import uuid

    from common.fdl import parse_definition
    from common.graph import build_graph
    from common.overlay import read_history

    definition = "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: kid\n    resourceArn: acs:fnf:::flow/child\n    pattern: sync\n"
    flow = parse_definition(definition)
    events = [
        HistoryEvent(1, 0, "ExecutionStarted", "", 1, {"input": {}}),
        HistoryEvent(2, 1, "StepEntered", "kid", 1, {"input": {}}),
        HistoryEvent(3, 2, "StepStarted", "kid", 1, {"input": {}}),
        HistoryEvent(4, 3, "TaskScheduled", "kid", 1, {"resource": "acs:fnf:::flow/child", "mode": "WaitForSystemCallback", "input": {}, "attempt": 1}),
    ]
    found = children("flow-1", "parent-1", read_history(flow, build_graph(flow), events))
    expected = str(uuid.uuid5(uuid.NAMESPACE_URL, "openfnf:flow-1/parent-1#2"))  # worker/children.py's name for activity 2
    assert found == [{"state": "kid", "flow": "child", "name": expected, "url": f"/console/flows/child/executions/{expected}"}]
