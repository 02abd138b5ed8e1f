"""Policies as a table: wildcards on actions and resources, explicit Deny wins, nothing allowed is denied."""
from __future__ import annotations

from typing import Any

import pytest

from api.actionspec import SPECS
from api.credentials import CredentialsError, parse_credentials
from api.policy import PolicyError, allowed, authorize, parse_policy, resource_arn
from common.errors import AccessDenied

ORDERS = [{"effect": "Allow", "action": ["fnf:StartExecution", "fnf:Describe*"], "resource": ["acs:fnf:*:*:flow/orders-*"]}]
WITH_DENY = [
    {"effect": "Allow", "action": "fnf:*", "resource": "*"},
    {"effect": "Deny", "action": ["fnf:Delete*", "fnf:StopExecution"], "resource": "acs:fnf:*:*:flow/prod-*"},
]
EXECUTIONS = [
    {"effect": "Allow", "action": "fnf:DescribeExecution", "resource": "acs:fnf:cn-hangzhou:123:flow/f/execution/run-?"},
]
RAM_STYLE = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "fnf:List*", "Resource": "acs:fnf:*:123:*"}]}

CASES: list[tuple[Any, str, dict[str, str], bool]] = [
    # no policy: everything on the own account
    (None, "DeleteFlow", {"Name": "anything"}, True),
    (None, "DescribeRegions", {}, True),
    # an empty policy: nothing
    ([], "DescribeFlow", {"Name": "orders-1"}, False),
    # action and resource wildcards
    (ORDERS, "StartExecution", {"FlowName": "orders-1"}, True),
    (ORDERS, "DescribeFlow", {"Name": "orders-eu"}, True),
    (ORDERS, "DescribeExecution", {"FlowName": "orders-1", "ExecutionName": "e"}, True),  # * spans /execution/e
    (ORDERS, "describeflow", {"Name": "orders-1"}, True),  # actions match without regard to case
    (ORDERS, "StartExecution", {"FlowName": "billing"}, False),  # resource not matched
    (ORDERS, "StartExecution", {"FlowName": "Orders-1"}, False),  # resources are case-sensitive
    (ORDERS, "DeleteFlow", {"Name": "orders-1"}, False),  # action not matched
    (ORDERS, "ListFlows", {}, False),
    (ORDERS, "StartExecution", {}, False),  # no flow named: flow/ does not match orders-*
    # explicit Deny wins over a broader Allow
    (WITH_DENY, "DeleteFlow", {"Name": "prod-a"}, False),
    (WITH_DENY, "StopExecution", {"FlowName": "prod-a", "ExecutionName": "x"}, False),
    (WITH_DENY, "DeleteFlow", {"Name": "dev-a"}, True),
    (WITH_DENY, "StartExecution", {"FlowName": "prod-a"}, True),
    # execution resources, region and account in the name, ? matches one character
    (EXECUTIONS, "DescribeExecution", {"FlowName": "f", "ExecutionName": "run-1"}, True),
    (EXECUTIONS, "DescribeExecution", {"FlowName": "f", "ExecutionName": "run-10"}, False),
    (EXECUTIONS, "DescribeExecution", {"FlowName": "g", "ExecutionName": "run-1"}, False),
    # a RAM JSON document works as well
    (RAM_STYLE, "ListFlows", {}, True),
    (RAM_STYLE, "ListExecutions", {"FlowName": "f"}, True),
    (RAM_STYLE, "DescribeFlow", {"Name": "f"}, False),
]


@pytest.mark.parametrize("policy, action, params, expected", CASES)
def test_policy_table(policy: Any, action: str, params: dict[str, str], expected: bool) -> None:
    statements = None if policy is None else parse_policy(policy)
    canonical = next(a for a in SPECS if a.lower() == action.lower())
    resource = resource_arn(canonical, params, "cn-hangzhou", "123")
    assert allowed(statements, action, resource) is expected


def test_resource_names() -> None:
    assert resource_arn("StartExecution", {"FlowName": "f"}, "cn-beijing", "9") == "acs:fnf:cn-beijing:9:flow/f"
    assert resource_arn("DescribeFlow", {"Name": "f"}, "r", "9") == "acs:fnf:r:9:flow/f"
    assert resource_arn("StopExecution", {"FlowName": "f", "ExecutionName": "e"}, "r", "9") == "acs:fnf:r:9:flow/f/execution/e"
    assert resource_arn("ListFlows", {}, "r", "9") == "acs:fnf:r:9:flow/*"
    assert resource_arn("DescribeRegions", {}, "r", "9") == "acs:fnf:r:9:*"


def test_authorize_raises_the_documented_error() -> None:
    with pytest.raises(AccessDenied) as info:
        authorize(parse_policy(ORDERS), "DeleteFlow", {"Name": "orders-1"}, "r", "9")
    assert (info.value.code, info.value.http_status, info.value.message) == ("AccessDenied", 403, "The resources doesn't belong to you.")
    authorize(None, "DeleteFlow", {"Name": "x"}, "r", "9")


@pytest.mark.parametrize(
    "bad",
    [
        "Allow everything",
        [{"effect": "Permit", "action": "fnf:*", "resource": "*"}],
        [{"effect": "Allow", "resource": "*"}],
        [{"effect": "Allow", "action": [], "resource": "*"}],
        [{"effect": "Allow", "action": "fnf:*", "resource": 7}],
        [{"Effect": "Allow", "Action": "fnf:*", "Resource": "*", "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}],
    ],
)
def test_bad_policies_are_refused_when_loaded(bad: Any) -> None:
    with pytest.raises(PolicyError):
        parse_policy(bad)
    doc = {"accounts": [{"id": "1", "access_keys": [{"id": "K", "secret": "s", "policy": bad}]}]}
    with pytest.raises(CredentialsError):
        parse_credentials(doc, "creds.yaml")


def test_credentials_keep_no_policy_apart_from_an_empty_one() -> None:
    doc = {"accounts": [{"id": 42, "access_keys": [{"id": "A", "secret": "s"}, {"id": "B", "secret": "s", "policy": []}]}]}
    keys = parse_credentials(doc, "creds.yaml")
    assert keys["A"].policy is None and keys["A"].account == "42"
    assert keys["B"].policy == ()
    with pytest.raises(CredentialsError):
        parse_credentials({"accounts": [{"id": 1, "access_keys": [{"id": "A", "secret": "s"}, {"id": "A", "secret": "t"}]}]}, "c")
