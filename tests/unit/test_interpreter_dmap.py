"""The distributed Map state in the pure interpreter: one MapRun activity per attempt, MapRun events,
Retry as a new MapRun, Catch, and the abort of the run when the parent stops (issue 16)."""
from __future__ import annotations

from typing import Any

from common.fdl import parse_definition
from common.interpreter import advance

FLOW = """
Type: StateMachine
StartAt: M
States:
  - Type: Map
    Name: M
    ProcessorConfig: {ExecutionMode: Standard}
    ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket.$: $Input.bucket, ObjectName: rows.csv}}
    ItemConstructor: {v.$: $Item, k.$: $Input.k}
    ItemBatcher: {MaxItemsPerBatch: 2, BatchInput: {b.$: $Input.k}}
    MaxItems.$: $Input.n
    MaxConcuccency: 4
    ToleratedFailureCount: 1
    ResultWriter: {Parameters: {Bucket: out, Prefix.$: $Input.k}}
    Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}
    Retry: [{Errors: [FnF.ItemReaderFailed], MaxAttempts: 1, IntervalSeconds: 1}]
    Catch: [{Errors: [FnF.ExceedToleratedFailureThreshold], Next: C}]
    End: true
  - {Type: Pass, Name: C, End: true}
"""
START = {"t": "Started", "input": {"bucket": "data", "k": "K", "n": 7}, "name": "e", "flow": "f"}


def _types(decision: Any) -> list[str]:
    return [h.type for h in decision.history]


def test_one_maprun_activity_with_everything_evaluated() -> None:
    flow = parse_definition(FLOW)
    d = advance(flow, None, [START], 1000)
    [cmd] = d.commands
    assert cmd["kind"] == "maprun" and cmd["mode"] == "WaitForSystemCallback" and cmd["token"]
    p = cmd["params"]
    assert p["source"] == {"type": "OSS_CSV", "headers": None, "Bucket": "data", "ObjectName": "rows.csv"}
    assert p["writer"] == {"Bucket": "out", "Prefix": "K"}
    assert p["batch"] == {"items": 2, "bytes": None, "input": {"b": "K"}}
    assert (p["max_items"], p["concurrency"], p["tcount"], p["tpct"], p["mode"]) == (7, 4, 1, None, "Standard")
    assert p["roots"]["$Input"]["k"] == "K" and p["constructor"] == {"v.$": "$Item", "k.$": "$Input.k"}


def test_started_then_succeeded_events_and_output() -> None:
    flow = parse_definition(FLOW)
    d = advance(flow, None, [START], 1000)
    aid = d.commands[0]["id"]
    d2 = advance(flow, d.state, [{"t": "ActivityCompleted", "id": aid, "result": {"MapRunName": "r1"}}], 1100)
    assert _types(d2) == ["MapRunStarted"] and d2.history[0].detail == {"output": {"MapRunName": "r1"}}
    d3 = advance(flow, d2.state, [{"t": "TaskReported", "id": aid, "ok": True, "output": {"MapRunName": "r1"}}], 1200)
    assert _types(d3)[0] == "MapRunSucceeded" and d3.status.value == "Succeeded"
    assert d3.output == {"MapRunName": "r1"}


def test_reader_failure_retries_as_a_new_maprun_then_threshold_is_caught() -> None:
    flow = parse_definition(FLOW)
    d = advance(flow, None, [START], 1000)
    first = d.commands[0]["id"]
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": first, "result": {"MapRunName": "r1"}},
                                {"t": "TaskReported", "id": first, "ok": False, "error": "FnF.ItemReaderFailed", "cause": "NoSuchKey"}], 1100)  # fmt: skip
    assert "MapRunFailed" in _types(d)
    [timer] = d.commands
    d = advance(flow, d.state, [{"t": "TimerFired", "id": timer["id"]}], 3000)
    [again] = d.commands
    assert again["kind"] == "maprun" and again["id"] != first and again["attempt"] == 2
    d = advance(flow, d.state, [{"t": "TaskReported", "id": again["id"], "ok": False, "error": "FnF.ExceedToleratedFailureThreshold", "cause": "x"}], 3100)
    assert d.status.value == "Succeeded" and "StepFailed" in _types(d)


def test_stopping_the_parent_cancels_the_maprun_activity() -> None:
    flow = parse_definition(FLOW)
    d = advance(flow, None, [START], 1000)
    aid = d.commands[0]["id"]
    d = advance(flow, d.state, [{"t": "StopRequested", "error": "", "cause": ""}], 1100)
    assert d.status.value == "Stopped"
    assert {"t": "CancelActivity", "id": aid} in d.commands


SIMPLE = FLOW.replace("    Retry: [{Errors: [FnF.ItemReaderFailed], MaxAttempts: 1, IntervalSeconds: 1}]\n", "").replace(
    "    Catch: [{Errors: [FnF.ExceedToleratedFailureThreshold], Next: C}]\n", ""
).replace("  - {Type: Pass, Name: C, End: true}\n", "")


def test_a_redrive_goes_on_with_the_maprun_the_map_had() -> None:
    flow = parse_definition(SIMPLE)
    d = advance(flow, None, [START], 1000)
    first = d.commands[0]
    assert "redrive" not in first["params"]
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": first["id"], "result": {"MapRunName": "r1"}},
                                {"t": "TaskReported", "id": first["id"], "ok": False, "error": "FnF.ExceedToleratedFailureThreshold", "cause": "x"}], 1100)  # fmt: skip
    assert d.status.value == "Failed"
    d = advance(flow, d.state, [{"t": "Redriven"}], 2000)
    [again] = [c for c in d.commands if c["t"] == "RunActivity"]
    assert again["kind"] == "maprun" and again["id"] != first["id"] and again["attempt"] == 1
    assert again["params"]["redrive"] == {"name": "r1", "act": first["id"]}  # worker/mapruns.py reopens r1
    d = advance(flow, d.state, [{"t": "ActivityCompleted", "id": again["id"], "result": {"MapRunName": "r1"}},
                                {"t": "TaskReported", "id": again["id"], "ok": True, "output": {"MapRunName": "r1"}}], 2100)  # fmt: skip
    assert d.status.value == "Succeeded" and "redo" not in str(d.state) and "'mr': {" not in str(d.state)


def test_a_parent_stopped_before_its_maprun_started_redrives_with_the_activity_it_had() -> None:
    flow = parse_definition(SIMPLE)
    d = advance(flow, None, [START], 1000)
    aid = d.commands[0]["id"]
    d = advance(flow, d.state, [{"t": "StopRequested", "error": "", "cause": ""}], 1100)
    d = advance(flow, d.state, [{"t": "Redriven"}], 2000)
    [again] = [c for c in d.commands if c["t"] == "RunActivity"]
    assert again["params"]["redrive"] == {"name": "", "act": aid}
