"""The flow cases of tests/fixtures/flows again, end to end: `openfnf api`, `worker`, `timers` driven by the official SDK.

Each case is created with CreateFlow, started with StartExecution (execution name and input as in
the unit run, so uuid() and $Context give the same values), awaited with DescribeExecution's
long poll, and its history read with GetExecutionHistory (all pages). The expectations are the
fixture's own: status, output, error and cause (from the terminal event), the [type, step]
history, and for timers the time it took at least.

Run here: every case that needs nothing of the engine, and those that need only timers (real
seconds; all cases are started first, so they wait side by side). Not yet: cases whose `engine:`
names activities or a stop (their answers are scripted for the simulated engine only), and the
two `simulated_clock` cases.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from tests.flowcases import EXECUTION, FlowCase, load_cases

pytestmark = pytest.mark.e2e

CASES = [c for c in load_cases() if c.engine <= {"timers"} and not c.simulated_clock]


@pytest.fixture(scope="module")
def started(sdk: Any) -> dict[str, Any]:
    """Every case's flow created and its execution started, before any test waits on one."""
    out = {}
    for case in CASES:
        flow = case.flow_name
        sdk.create_flow(models.CreateFlowRequest(name=flow, definition=case.definition, description=case.description[:256], type="FDL"))
        request = models.StartExecutionRequest(flow_name=flow, execution_name=EXECUTION, input=json.dumps(case.input))
        out[case.name] = sdk.start_execution(request).body
    return out


def _history(sdk: Any, flow: str, name: str) -> list[Any]:
    events, token = [], None
    while True:
        page = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000, next_token=token)).body
        events += page.events
        token = page.next_token
        if not token:
            return events


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case_end_to_end(sdk: Any, started: dict[str, Any], case: FlowCase) -> None:
    flow = case.flow_name
    assert started[case.name].name == EXECUTION
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=EXECUTION, wait_time_seconds=60)).body
    expect = case.expect
    assert done.status == expect["status"]
    events = _history(sdk, flow, EXECUTION)
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    detail = json.loads(events[-1].event_detail)
    if "output" in expect:
        assert json.loads(done.output) == expect["output"]
        assert detail == {"output": expect["output"]}
    if "error" in expect:
        assert detail["error"] == expect["error"]
    if "cause" in expect:
        assert detail["cause"] == expect["cause"]
    if "history" in expect:
        assert [[e.type, e.step_name] for e in events] == expect["history"]
    if "time" in expect:
        assert _seconds(done.stopped_time) - _seconds(done.started_time) >= expect["time"] - 0.01
    assert events[0].type == "ExecutionStarted" and json.loads(events[0].event_detail) == {"input": case.input}
    assert all(0 <= e.schedule_event_id < e.event_id for e in events)


def test_every_case_run_here_has_its_own_flow_name() -> None:
    names = [c.flow_name for c in CASES]
    assert len(names) == len(set(names))
