"""DescribeExecution and ListExecutions carry the Environment the execution ran with, through the official SDK."""
from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

pytestmark = pytest.mark.e2e

PASS = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def variables(env: Any) -> list[tuple[str, str]]:
    return [(v.name, v.value) for v in (env.variables if env is not None else [])]


def test_an_execution_reports_the_environment_it_started_with(sdk: Any) -> None:
    env = models.CreateFlowRequestEnvironment(variables=[models.CreateFlowRequestEnvironmentVariables(name="STAGE", value="blue")])
    sdk.create_flow(models.CreateFlowRequest(name="with_env", definition=PASS, description="", type="FDL", environment=env))
    sdk.start_execution(models.StartExecutionRequest(flow_name="with_env", execution_name="e1"))
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="with_env", execution_name="e1", wait_time_seconds=30)).body
    assert done.status == "Succeeded"
    assert variables(done.environment) == [("STAGE", "blue")]
    # A later UpdateFlow changes what new executions run with, not what e1 ran with.
    new_env = models.UpdateFlowRequestEnvironment(variables=[models.UpdateFlowRequestEnvironmentVariables(name="STAGE", value="green")])
    sdk.update_flow(models.UpdateFlowRequest(name="with_env", environment=new_env))
    sdk.start_execution(models.StartExecutionRequest(flow_name="with_env", execution_name="e2"))
    sdk.describe_execution(models.DescribeExecutionRequest(flow_name="with_env", execution_name="e2", wait_time_seconds=30))
    listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="with_env")).body.executions
    assert {e.name: variables(e.environment) for e in listed} == {"e1": [("STAGE", "blue")], "e2": [("STAGE", "green")]}
    again = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="with_env", execution_name="e1")).body
    assert variables(again.environment) == [("STAGE", "blue")]


def test_a_flow_without_an_environment_reports_none(sdk: Any) -> None:
    sdk.create_flow(models.CreateFlowRequest(name="no_env", definition=PASS, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="no_env", execution_name="e1"))
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="no_env", execution_name="e1", wait_time_seconds=30)).body
    assert done.status == "Succeeded" and done.environment is None
