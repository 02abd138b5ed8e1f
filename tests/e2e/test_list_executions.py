"""ListExecutions with every documented filter, and paging, through the official SDK."""
from __future__ import annotations

import time
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common.timefmt import parse_rfc3339, rfc3339_ms

pytestmark = pytest.mark.e2e

FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: Route
States:
  - Type: Choice
    Name: Route
    Branches:
      - Condition: $Input.mode == "fail"
        Next: Boom
      - Condition: $Input.mode == "wait"
        Next: Hold
    Default: Ok
  - Type: Fail
    Name: Boom
    Code: Nope
  - Type: Wait
    Name: Hold
    Seconds: 200
    Next: Ok
  - Type: Pass
    Name: Ok
    End: true
"""


def names(sdk: Any, **kw: Any) -> list[str]:
    found, token = [], None
    while True:
        page = sdk.list_executions(models.ListExecutionsRequest(flow_name="listed_flow", next_token=token, **kw)).body
        found += [e.name for e in page.executions]
        token = page.next_token
        if not token:
            return found


@pytest.fixture(scope="module")
def listed(sdk: Any) -> dict[str, str]:
    sdk.create_flow(models.CreateFlowRequest(name="listed_flow", definition=FLOW, description="", type="FDL"))
    sdk.publish_flow_version(models.PublishFlowVersionRequest(flow_name="listed_flow"))
    plan = [("ok_a", "ok", None), ("ok_b", "ok", "1"), ("bad_a", "fail", None), ("held_a", "wait", None)]
    started = {}  # each execution's own StartedTime, as the service wrote it
    for name, mode, qualifier in plan:
        body = sdk.start_execution(models.StartExecutionRequest(flow_name="listed_flow", execution_name=name, input=f'{{"mode": "{mode}"}}', qualifier=qualifier)).body
        started[name] = body.started_time
        wait_past(parse_rfc3339(body.started_time))  # distinct start times (ms) for the time filters
    for name, mode, _ in plan:
        if mode != "wait":
            sdk.describe_execution(models.DescribeExecutionRequest(flow_name="listed_flow", execution_name=name, wait_time_seconds=30))
    assert len({parse_rfc3339(t) for t in started.values()}) == len(plan), started
    return started


def wait_past(epoch_ms: int) -> None:
    """Return once this machine's clock (the service's too) reads a later millisecond."""
    while int(time.time() * 1000) <= epoch_ms:
        time.sleep(0.001)


def test_no_filter_lists_all_in_start_order_and_pages(sdk: Any, listed: dict[str, str]) -> None:
    assert names(sdk) == ["ok_a", "ok_b", "bad_a", "held_a"]
    assert names(sdk, limit=1) == ["ok_a", "ok_b", "bad_a", "held_a"]


@pytest.mark.parametrize(
    "status, expected", [("Succeeded", ["ok_a", "ok_b"]), ("Failed", ["bad_a"]), ("Running", ["held_a"]), ("Stopped", [])]
)
def test_status_filter(sdk: Any, listed: dict[str, str], status: str, expected: list[str]) -> None:
    assert names(sdk, status=status) == expected
    assert names(sdk, status=status, limit=1) == expected


def test_prefix_and_qualifier_filters(sdk: Any, listed: dict[str, str]) -> None:
    assert names(sdk, execution_name_prefix="ok_") == ["ok_a", "ok_b"]
    assert names(sdk, execution_name_prefix="nothing") == []
    assert names(sdk, qualifier="1") == ["ok_b"]


def test_started_time_filters(sdk: Any, listed: dict[str, str]) -> None:
    """Both bounds are inclusive, to the millisecond of each execution's StartedTime."""
    assert names(sdk, started_time_begin=listed["bad_a"]) == ["bad_a", "held_a"]
    assert names(sdk, started_time_end=listed["ok_b"]) == ["ok_a", "ok_b"]
    assert names(sdk, started_time_end=before(listed["ok_b"])) == ["ok_a"]
    assert names(sdk, started_time_begin=listed["ok_b"], started_time_end=listed["bad_a"]) == ["ok_b", "bad_a"]
    assert names(sdk, started_time_begin=listed["ok_b"], started_time_end=before(listed["held_a"])) == ["ok_b", "bad_a"]
    with pytest.raises(TeaException) as info:
        names(sdk, started_time_begin="yesterday")
    assert (info.value.code, info.value.statusCode) == ("InvalidArgument", 400)


def before(started: str) -> str:
    """The millisecond before this StartedTime."""
    return rfc3339_ms(parse_rfc3339(started) - 1)


def test_metadata_only_omits_definition_input_and_output(sdk: Any, listed: dict[str, str]) -> None:
    full = sdk.list_executions(models.ListExecutionsRequest(flow_name="listed_flow", limit=1)).body.executions[0]
    assert full.flow_definition == FLOW and full.input
    lean = sdk.list_executions(models.ListExecutionsRequest(flow_name="listed_flow", limit=1, metadata_only=True)).body.executions[0]
    assert lean.flow_definition is None and lean.input is None and lean.output is None
    assert lean.name == "ok_a" and lean.status == "Succeeded"


def test_a_bad_status_is_invalid(sdk: Any, listed: dict[str, str]) -> None:
    with pytest.raises(TeaException) as info:
        names(sdk, status="Sleeping")
    assert (info.value.code, info.value.statusCode) == ("InvalidArgument", 400)
