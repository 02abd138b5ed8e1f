"""A flow runs end to end: `openfnf api`, `worker` and `timers` as processes, driven by both official SDKs."""
from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkfnf.request.v20190315 import (
    CreateFlowRequest,
    DescribeExecutionRequest,
    DescribeFlowRequest,
    GetExecutionHistoryRequest,
    StartExecutionRequest,
)
from Tea.exceptions import TeaException

from tests.conftest import Service

pytestmark = pytest.mark.e2e

OLD = """version: v1
type: flow
steps:
  - type: pass
    name: greet
    outputMappings:
      - target: greeting
        source: $input.name
  - type: pass
    name: stamp
    outputMappings:
      - target: stamped
        source: true
"""

NEW = """Type: StateMachine
SpecVersion: v1
Name: {name}
StartAt: Greet
States:
  - Type: Pass
    Name: Greet
    OutputConstructor:
      greeting.$: $Input.name
    Next: Done
  - Type: Succeed
    Name: Done
"""


def _history_types(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.type, e.step_name) for e in events]


@pytest.mark.parametrize(
    "flow, definition, expected",
    [
        ("old_syntax_flow", OLD, {"greeting": "ada", "stamped": True}),
        ("new_syntax_flow", NEW.format(name="new_syntax_flow"), {"greeting": "ada"}),
    ],
)
def test_new_sdk_runs_a_flow_to_succeeded(sdk: Any, flow: str, definition: str, expected: dict[str, Any]) -> None:
    created = sdk.create_flow(models.CreateFlowRequest(name=flow, definition=definition, description="e2e", type="FDL")).body
    assert created.name == flow and created.definition == definition and created.id
    started = sdk.start_execution(
        models.StartExecutionRequest(flow_name=flow, execution_name="run1", input=json.dumps({"name": "ada"}))
    ).body
    assert started.name == "run1" and started.status == "Running" and started.flow_definition == definition
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name="run1", wait_time_seconds=30)).body
    assert done.status == "Succeeded"
    assert json.loads(done.output) == expected
    assert done.started_time <= done.stopped_time
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name="run1")).body.events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "ExecutionStarted" and events[0].step_name == ""
    assert json.loads(events[0].event_detail) == {"input": {"name": "ada"}}
    assert events[-1].type == "ExecutionSucceeded"
    assert json.loads(events[-1].event_detail) == {"output": expected}
    step_types = [t for t, step in _history_types(events) if step]
    assert step_types[:4] == ["StepEntered", "StepStarted", "StepSucceeded", "StepExited"]


def test_history_pages_with_next_token(sdk: Any) -> None:
    flow = "paged_history"
    sdk.create_flow(models.CreateFlowRequest(name=flow, definition=OLD, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name="e"))
    sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name="e", wait_time_seconds=30))
    ids, token = [], None
    while True:
        page = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name="e", limit=3, next_token=token)).body
        assert len(page.events) <= 3
        ids += [e.event_id for e in page.events]
        token = page.next_token
        if not token:
            break
    assert ids == list(range(1, 11))


def test_a_failing_flow_ends_failed(sdk: Any) -> None:
    definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: Nope\n    Detail: refused\n"
    sdk.create_flow(models.CreateFlowRequest(name="failing", definition=definition, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="failing", execution_name="x"))
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="failing", execution_name="x", wait_time_seconds=30)).body
    assert done.status == "Failed"
    last = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="failing", execution_name="x")).body.events[-1]
    assert last.type == "ExecutionFailed" and json.loads(last.event_detail) == {"error": "Nope", "cause": "refused"}


def _old(service: Service, request: Any) -> Any:
    request.set_endpoint(service.endpoint)
    request.set_protocol_type("http")
    return json.loads(service.old_client().do_action_with_exception(request))


@pytest.mark.parametrize("flow, definition", [("old_sdk_old_syntax", OLD), ("old_sdk_new_syntax", NEW.format(name="old_sdk_new_syntax"))])
def test_old_sdk_runs_a_flow_to_succeeded(service: Service, flow: str, definition: str) -> None:
    create = CreateFlowRequest.CreateFlowRequest()
    create.set_Name(flow)
    create.set_Definition(definition)
    create.set_Description("old sdk")
    create.set_Type("FDL")
    assert _old(service, create)["Name"] == flow
    start = StartExecutionRequest.StartExecutionRequest()
    start.set_FlowName(flow)
    start.set_ExecutionName("e1")
    start.set_Input('{"name": "old"}')
    assert _old(service, start)["Status"] == "Running"
    describe = DescribeExecutionRequest.DescribeExecutionRequest()
    describe.set_FlowName(flow)
    describe.set_ExecutionName("e1")
    describe.set_WaitTimeSeconds(30)
    done = _old(service, describe)
    assert done["Status"] == "Succeeded" and json.loads(done["Output"])["greeting"] == "old"
    history = GetExecutionHistoryRequest.GetExecutionHistoryRequest()
    history.set_FlowName(flow)
    history.set_ExecutionName("e1")
    events = _old(service, history)["Events"]
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["Type"] == "ExecutionStarted" and events[-1]["Type"] == "ExecutionSucceeded"


def test_old_sdk_sees_documented_errors(service: Service) -> None:
    describe = DescribeFlowRequest.DescribeFlowRequest()
    describe.set_Name("no_such_flow")
    with pytest.raises(ServerException) as info:
        _old(service, describe)
    assert info.value.get_error_code() == "FlowNotExists"
    assert info.value.get_http_status() == 404
    assert info.value.get_request_id()


def test_flow_crud_and_paging(sdk: Any) -> None:
    names = [f"crud_{i}" for i in range(5)]
    for n in names:
        sdk.create_flow(models.CreateFlowRequest(name=n, definition=OLD, description=n, type="FDL"))
    with pytest.raises(TeaException) as info:
        sdk.create_flow(models.CreateFlowRequest(name="crud_0", definition=OLD, description="", type="FDL"))
    assert info.value.code == "FlowAlreadyExists" and info.value.statusCode == 409
    seen, token = [], None
    while True:
        page = sdk.list_flows(models.ListFlowsRequest(limit=2, next_token=token)).body
        seen += [f.name for f in page.flows]
        token = page.next_token
        if not token:
            break
    assert [n for n in seen if n.startswith("crud_")] == names
    updated = sdk.update_flow(models.UpdateFlowRequest(name="crud_1", description="changed", definition=NEW.format(name="crud_1"))).body
    assert updated.description == "changed" and updated.definition.startswith("Type: StateMachine")
    described = sdk.describe_flow(models.DescribeFlowRequest(name="crud_1")).body
    assert described.description == "changed" and described.created_time <= described.last_modified_time
    sdk.delete_flow(models.DeleteFlowRequest(name="crud_2"))
    with pytest.raises(TeaException) as info:
        sdk.describe_flow(models.DescribeFlowRequest(name="crud_2"))
    assert info.value.code == "FlowNotExists" and info.value.statusCode == 404


def test_invalid_definition_and_unknown_step_type_are_400(sdk: Any) -> None:
    bad = "version: v1\ntype: flow\nsteps:\n  - type: sleep\n    name: nap\n"
    with pytest.raises(TeaException) as info:
        sdk.create_flow(models.CreateFlowRequest(name="has_sleep", definition=bad, description="", type="FDL"))
    assert info.value.code == "InvalidArgument" and info.value.statusCode == 400
    assert "sleep" in info.value.message


def test_list_and_stop_and_missing_execution(sdk: Any) -> None:
    sdk.create_flow(models.CreateFlowRequest(name="listed", definition=OLD, description="", type="FDL"))
    for i in range(3):
        sdk.start_execution(models.StartExecutionRequest(flow_name="listed", execution_name=f"e{i}"))
    for i in range(3):
        sdk.describe_execution(models.DescribeExecutionRequest(flow_name="listed", execution_name=f"e{i}", wait_time_seconds=30))
    first = sdk.list_executions(models.ListExecutionsRequest(flow_name="listed", limit=2)).body
    assert [e.name for e in first.executions] == ["e0", "e1"] and first.next_token == "e2"
    rest = sdk.list_executions(models.ListExecutionsRequest(flow_name="listed", limit=2, next_token=first.next_token)).body
    assert [e.name for e in rest.executions] == ["e2"] and not rest.next_token
    assert all(e.status == "Succeeded" for e in first.executions + rest.executions)
    with pytest.raises(TeaException) as info:
        sdk.stop_execution(models.StopExecutionRequest(flow_name="listed", execution_name="e0"))
    assert info.value.code == "ExecutionAlreadyCompleted" and info.value.statusCode == 400
    with pytest.raises(TeaException) as info:
        sdk.describe_execution(models.DescribeExecutionRequest(flow_name="listed", execution_name="nope"))
    assert info.value.code == "ExecutionNotExists" and info.value.statusCode == 404


def test_wrong_secret_is_refused(service: Service) -> None:
    from tests.conftest import new_sdk_client

    bad = new_sdk_client(service.endpoint, service.key_id, "not-the-secret")
    with pytest.raises(TeaException) as info:
        bad.list_flows(models.ListFlowsRequest())
    assert info.value.code == "SignatureNotMatch" and info.value.statusCode == 403
