"""StartExecution under concurrency and crashes: one name, many callers, two front doors; a front door killed mid-start."""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from openfnf.redisserver import free_port
from tests.conftest import Service, new_sdk_client

pytestmark = pytest.mark.e2e

FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: A
States:
  - Type: Pass
    Name: A
    OutputConstructor:
      seen.$: $Input.caller
    End: true
"""


def test_500_concurrent_starts_of_one_name_over_two_front_doors_make_one_execution(service: Service) -> None:
    port2 = free_port()
    service.start("api2", "api", "--port", str(port2))
    try:
        sdk_a, sdk_b = service.client(), new_sdk_client(f"127.0.0.1:{port2}", service.key_id, service.secret)
        sdk_a.create_flow(models.CreateFlowRequest(name="racy", definition=FLOW, description="", type="FDL"))

        def call(i: int) -> tuple[str, Any]:
            client = sdk_a if i % 2 else sdk_b
            req = models.StartExecutionRequest(flow_name="racy", execution_name="the_one", input=json.dumps({"caller": i}))
            try:
                return "ok", client.start_execution(req).body
            except TeaException as err:
                return f"{err.statusCode} {err.code}", err

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(call, range(500)))
    finally:
        service.stop("api2")
    outcomes = Counter(kind for kind, _ in results)
    assert set(outcomes) <= {"ok", "400 ExecutionAlreadyExists"}, outcomes
    assert outcomes["ok"] >= 1
    oks = [body for kind, body in results if kind == "ok"]
    assert len({(b.name, b.started_time, b.input) for b in oks}) == 1  # everyone saw the same execution
    winner = json.loads(oks[0].input)["caller"]
    sdk = service.client()
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="racy", execution_name="the_one", wait_time_seconds=30)).body
    assert done.status == "Succeeded" and json.loads(done.output) == {"seen": winner}
    listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="racy")).body.executions
    assert [e.name for e in listed] == ["the_one"]
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="racy", execution_name="the_one")).body.events
    assert [e.type for e in events].count("ExecutionStarted") == 1 and len(events) == 6  # it ran once


def test_a_front_door_killed_after_the_claim_loses_nothing(service: Service) -> None:
    """SIGKILL-equivalent exit between the claim and the hand-off to Celery: the safety net runs it."""
    port2 = free_port()
    service.start("api_dies", "api", "--port", str(port2), env={"OPENFNF_FAULT_POINTS": '["api.after_claim"]'})
    sdk = service.client()
    sdk.create_flow(models.CreateFlowRequest(name="crashy", definition=FLOW, description="", type="FDL"))
    doomed = new_sdk_client(f"127.0.0.1:{port2}", service.key_id, service.secret)
    with pytest.raises(Exception):  # noqa: B017 - the connection dies with the process; any client error
        doomed.start_execution(models.StartExecutionRequest(flow_name="crashy", execution_name="orphan", input='{"caller": 7}'))
    assert service.procs["api_dies"].wait(30) == 137  # it really died at the fault point
    service.procs.pop("api_dies")
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="crashy", execution_name="orphan", wait_time_seconds=30)).body
    assert done.status == "Succeeded" and json.loads(done.output) == {"seen": 7}
