"""The API's actions by name: the 29 of 2019-03-15, and the handlers implemented so far."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.actions import (  # regions, schedules, sync: issue 8
    executions,
    flows,
    mapruns,
    redrive,
    regions,
    schedules,
    sync,
    tasks,
    versions,
)
from api.actions.context import Call

Handler = Callable[[Call], Awaitable[dict[str, Any]]]

ALL_ACTIONS = (
    "CreateFlow", "UpdateFlow", "DeleteFlow", "DescribeFlow", "ListFlows",
    "PublishFlowVersion", "ListFlowVersions", "DeleteFlowVersion",
    "CreateFlowAlias", "UpdateFlowAlias", "DescribeFlowAlias", "ListFlowAliases", "DeleteFlowAlias",
    "StartExecution", "StartSyncExecution", "StopExecution", "DescribeExecution", "ListExecutions",
    "GetExecutionHistory", "ReportTaskSucceeded", "ReportTaskFailed",
    "CreateSchedule", "UpdateSchedule", "DeleteSchedule", "DescribeSchedule", "ListSchedules",
    "DescribeMapRun", "UpdateMapRun", "DescribeRegions",
    "RedriveExecution",  # an OpenFnF extension (issue 18)
)  # fmt: skip

HANDLERS: dict[str, Handler] = {
    "CreateFlow": flows.create_flow,
    "DescribeFlow": flows.describe_flow,
    "UpdateFlow": flows.update_flow,
    "DeleteFlow": flows.delete_flow,
    "ListFlows": flows.list_flows,
    "StartExecution": executions.start_execution,
    "DescribeExecution": executions.describe_execution,
    "ListExecutions": executions.list_executions,
    "GetExecutionHistory": executions.get_execution_history,
    "StopExecution": executions.stop_execution,
    "PublishFlowVersion": versions.publish_flow_version,
    "ListFlowVersions": versions.list_flow_versions,
    "DeleteFlowVersion": versions.delete_flow_version,
    "CreateFlowAlias": versions.create_flow_alias,
    "UpdateFlowAlias": versions.update_flow_alias,
    "DescribeFlowAlias": versions.describe_flow_alias,
    "ListFlowAliases": versions.list_flow_aliases,
    "DeleteFlowAlias": versions.delete_flow_alias,
    "ReportTaskSucceeded": tasks.report_task_succeeded,
    "ReportTaskFailed": tasks.report_task_failed,
    # issue 8
    "CreateSchedule": schedules.create_schedule,
    "UpdateSchedule": schedules.update_schedule,
    "DeleteSchedule": schedules.delete_schedule,
    "DescribeSchedule": schedules.describe_schedule,
    "ListSchedules": schedules.list_schedules,
    "StartSyncExecution": sync.start_sync_execution,
    "DescribeRegions": regions.describe_regions,
    "RedriveExecution": redrive.redrive_execution,  # an OpenFnF extension (issue 18)
    "DescribeMapRun": mapruns.describe_map_run,  # issue 16
    "UpdateMapRun": mapruns.update_map_run,
}
