"""Required and typed parameters of all 29 actions (spec Appendix A), checked before any handler runs.

The tables here are written from the spec, not read from api/actionspec.py, so a wrong entry there fails.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from tests.frontdoor import FORM_HEADERS, check_error, signed_request
from tests.integration.test_front_door_protocol import make_settings

# Appendix A, "Req = Y" (CreateFlow's Description and Type are optional: docs/compatibility.md).
REQUIRED: dict[str, list[str]] = {
    "CreateFlow": ["Name", "Definition"],
    "UpdateFlow": ["Name"],
    "DeleteFlow": ["Name"],
    "DescribeFlow": ["Name"],
    "ListFlows": [],
    "PublishFlowVersion": ["FlowName"],
    "ListFlowVersions": ["FlowName"],
    "DeleteFlowVersion": ["FlowName", "FlowVersion"],
    "CreateFlowAlias": ["FlowName", "Name", "RoutingConfigurations"],
    "UpdateFlowAlias": ["FlowName", "Name"],
    "DescribeFlowAlias": ["FlowName", "Name"],
    "ListFlowAliases": ["FlowName"],
    "DeleteFlowAlias": ["FlowName", "Name"],
    "StartExecution": ["FlowName"],
    "StartSyncExecution": ["FlowName"],
    "StopExecution": ["FlowName", "ExecutionName"],
    "DescribeExecution": ["FlowName", "ExecutionName"],
    "ListExecutions": ["FlowName"],
    "GetExecutionHistory": ["FlowName", "ExecutionName"],
    "ReportTaskSucceeded": ["TaskToken", "Output"],
    "ReportTaskFailed": ["TaskToken", "Error"],
    "CreateSchedule": ["FlowName", "ScheduleName", "CronExpression"],
    "UpdateSchedule": ["FlowName", "ScheduleName"],
    "DeleteSchedule": ["FlowName", "ScheduleName"],
    "DescribeSchedule": ["FlowName", "ScheduleName"],
    "ListSchedules": ["FlowName"],
    "DescribeMapRun": ["FlowName", "ExecutionName", "MapRunName"],
    "UpdateMapRun": ["FlowName", "ExecutionName", "MapRunName"],
    "DescribeRegions": [],
    "RedriveExecution": ["FlowName", "ExecutionName"],  # an OpenFnF extension (issue 18), not in Appendix A
}

# (action, parameter, bad value): every typed parameter of Appendix A, each with a value that must be refused.
BAD_TYPED = [
    ("ListFlows", "Limit", "abc"),
    ("ListFlows", "Limit", "0"),
    ("ListFlows", "Limit", "1000"),
    ("ListFlows", "Limit", "1.5"),
    ("ListFlowVersions", "Limit", "-1"),
    ("ListFlowAliases", "Limit", "99999"),
    ("ListExecutions", "Limit", "101"),
    ("ListExecutions", "MetadataOnly", "yes"),
    ("ListExecutions", "StartedTimeBegin", "yesterday"),
    ("ListExecutions", "StartedTimeEnd", "2019-13-45T99:00:00Z"),
    ("ListExecutions", "Status", "Done"),
    ("GetExecutionHistory", "Limit", "1001"),
    ("ListSchedules", "Limit", "0x10"),
    ("DescribeExecution", "WaitTimeSeconds", "61"),
    ("DescribeExecution", "WaitTimeSeconds", "-1"),
    ("DescribeExecution", "WaitTimeSeconds", "1e3"),
    ("CreateFlow", "Environment", "not json"),
    ("CreateFlow", "Environment", "[1, 2]"),
    ("CreateFlow", "ExecutionMode", "Fast"),
    ("UpdateFlow", "Environment", '"a string"'),
    ("CreateFlowAlias", "RoutingConfigurations", '{"Version": "1"}'),
    ("UpdateFlowAlias", "RoutingConfigurations", "[1]"),
    ("CreateSchedule", "Enable", "maybe"),
    ("CreateSchedule", "Payload", "[1]"),
    ("UpdateSchedule", "Enable", "yes"),
    ("UpdateSchedule", "Payload", "{"),
    ("UpdateMapRun", "Concurrency", "many"),
    ("UpdateMapRun", "ToleratedFailedCount", "-3"),
    ("UpdateMapRun", "ToleratedFailedPercentage", "101"),
    ("UpdateMapRun", "ToleratedFailedPercentage", "nan"),
    ("StopExecution", "Error", "e" * 129),
    ("StopExecution", "Cause", "c" * 4097),
    ("ReportTaskFailed", "Error", "e" * 129),
    ("ReportTaskFailed", "Cause", "c" * 4097),
    # JSON nested past OPENFNF_MAX_JSON_DEPTH (64), or holding NaN/Infinity, is named, never a 500.
    ("CreateSchedule", "Payload", '{"a":' * 65 + "1" + "}" * 65),
    ("CreateSchedule", "Payload", '{"a":' * 5000 + "1" + "}" * 5000),
    ("UpdateSchedule", "Payload", '{"a": NaN}'),
    ("CreateFlow", "Environment", '{"Variables": [], "x": ' + "[" * 3000 + "]" * 3000 + "}"),
    ("CreateFlow", "Environment", '{"Variables": [{"Name": "A", "Value": Infinity}]}'),
    ("CreateFlowAlias", "RoutingConfigurations", "[" * 2000 + "]" * 2000),
]

# Values the SDKs really send, which must pass the table (booleans as True/true, ints as strings).
GOOD_TYPED = [
    ("ListExecutions", "MetadataOnly", "True"),
    ("ListExecutions", "MetadataOnly", "false"),
    ("ListExecutions", "StartedTimeBegin", "2019-01-01T01:01:01Z"),
    ("ListExecutions", "Limit", "100"),
    ("CreateSchedule", "Enable", "TRUE"),
    ("UpdateMapRun", "ToleratedFailedPercentage", "0.5"),
    ("CreateFlowAlias", "RoutingConfigurations", '[{"Version":"1","Weight":100}]'),
    ("CreateFlow", "Environment", '{"Variables":[{"Name":"A","Value":"1"}]}'),
    ("DescribeExecution", "WaitTimeSeconds", "0"),
]


def full(action: str) -> dict[str, str]:
    """Every required parameter of the action, with a value of the right type."""
    values = {"RoutingConfigurations": '[{"Version":"1","Weight":100}]', "CronExpression": "0 * * * * *", "Output": "{}"}
    return {name: values.get(name, "x1") for name in REQUIRED[action]}


@pytest.fixture(scope="module")
def base_settings(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_settings(redis_server, tmp_path_factory.mktemp("params"))


@pytest.fixture
async def client(aiohttp_client: Any, base_settings: Any, r: Any) -> TestClient:
    return await aiohttp_client(make_app(base_settings))


async def send(client: TestClient, action: str, params: dict[str, str]) -> tuple[int, Any, str]:
    path, form = signed_request(action, params)
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    return resp.status, resp.headers, await resp.text()


def test_the_tables_cover_all_29_actions() -> None:
    from api.actions import ALL_ACTIONS

    assert set(REQUIRED) == set(ALL_ACTIONS)


async def test_each_missing_required_parameter_is_named(client: TestClient) -> None:
    for action, names in REQUIRED.items():
        for missing in names:
            params = {k: v for k, v in full(action).items() if k != missing}
            status, headers, text = await send(client, action, params)
            body = check_error(status, headers, text, "MissingRequiredParams", 400)
            assert body["Message"] == f"The HTTP query '{missing}' must be specified.", (action, body)
        # With all of them, the answer is about something else (the resource, or success).
        status, _, text = await send(client, action, full(action))
        assert status in (200, 400, 404), (action, status, text)  # never a 500
        assert json.loads(text).get("Code") != "MissingRequiredParams", (action, text)


@pytest.mark.parametrize("action, param, value", BAD_TYPED)
async def test_a_bad_typed_parameter_is_invalid_argument_naming_it(client: TestClient, action: str, param: str, value: str) -> None:
    status, headers, text = await send(client, action, {**full(action), param: value})
    body = check_error(status, headers, text, "InvalidArgument", 400)
    assert body["Message"].startswith(param), body


async def test_values_the_sdks_send_pass_the_table(client: TestClient) -> None:
    for action, param, value in GOOD_TYPED:
        status, _, text = await send(client, action, {**full(action), param: value})
        body = json.loads(text)
        assert status in (200, 400, 404), (action, param, value, status, body)  # never a 500
        assert not (body.get("Code") == "InvalidArgument" and body["Message"].startswith(param)), (action, param, value, body)
