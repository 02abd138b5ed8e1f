"""What a signed-in key may see and do in the console: the API's own policies, action by action.

Every console route names the API action it stands for; the policy engine (common/policy.py)
decides on the same resource names the front door uses. Tenancy is not a policy question: a flow
of another account is looked up in the signed-in key's account and is not found (404).
"""
from __future__ import annotations

from dataclasses import dataclass

from common.credentials import AccessKey
from common.policy import allowed, execution_arn, flow_arn


@dataclass(frozen=True)
class Route:
    """A console route: its name, method and the API action whose permission it needs."""

    name: str
    method: str
    action: str
    scope: str  # all-flows, flow, execution, task


ROUTES = (
    Route("flows", "GET", "ListFlows", "all-flows"),
    Route("overview", "GET", "ListFlows", "all-flows"),
    Route("flow", "GET", "DescribeFlow", "flow"),
    Route("start", "POST", "StartExecution", "flow"),
    Route("execution", "GET", "DescribeExecution", "execution"),
    Route("live", "GET", "DescribeExecution", "execution"),
    Route("maprun", "GET", "DescribeMapRun", "execution"),  # a distributed Map's run (issue 16), under its parent
    Route("stop", "POST", "StopExecution", "execution"),
    Route("redrive", "POST", "RedriveExecution", "execution"),  # the OpenFnF extension (issue 18)
    Route("restart", "POST", "StartExecution", "flow"),
    Route("report", "POST", "ReportTaskSucceeded", "task"),  # ReportTaskFailed for a failure report
)
BY_NAME = {r.name: r for r in ROUTES}

# Parts of a page that need more than the page's own action; without it the part says so.
SECTIONS = {
    "executions": "ListExecutions",
    "history": "GetExecutionHistory",
    "versions": "ListFlowVersions",
    "schedules": "ListSchedules",
}


def resource(region: str, account: str, scope: str, flow: str = "", execution: str = "") -> str:
    """The resource name of a console route, as the front door names the same API call's resource."""
    if scope == "flow":
        return flow_arn(region, account, flow)
    if scope == "execution":
        return execution_arn(region, account, flow, execution)
    if scope == "task":
        return execution_arn(region, account, "*", "*")
    return flow_arn(region, account, "*")


def may(key: AccessKey, action: str, region: str, scope: str, flow: str = "", execution: str = "") -> bool:
    """Whether `key` may do API `action` on that resource of its own account."""
    return allowed(key.policy, action, resource(region, key.account, scope, flow, execution))
