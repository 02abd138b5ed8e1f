"""RedriveExecution is authorised as fnf:RedriveExecution on the execution's resource (issue 18)."""
from __future__ import annotations

import pytest

from api.policy import authorize, parse_policy, resource_arn
from common.errors import AccessDenied

PARAMS = {"FlowName": "f", "ExecutionName": "e1"}


def test_its_resource_is_the_execution() -> None:
    assert resource_arn("RedriveExecution", PARAMS, "cn-hangzhou", "1") == "acs:fnf:cn-hangzhou:1:flow/f/execution/e1"


@pytest.mark.parametrize(
    ("actions", "allowed"),
    [(["fnf:*"], True), (["fnf:RedriveExecution"], True), (["fnf:Redrive*"], True), (["fnf:StartExecution", "fnf:StopExecution"], False),
     (["fnf:Describe*", "fnf:List*", "fnf:Get*"], False)],
)  # fmt: skip
def test_a_policy_must_name_it(actions: list[str], allowed: bool) -> None:
    statements = parse_policy([{"effect": "Allow", "action": actions, "resource": "*"}])
    if allowed:
        authorize(statements, "RedriveExecution", PARAMS, "cn-hangzhou", "1")
    else:
        with pytest.raises(AccessDenied):
            authorize(statements, "RedriveExecution", PARAMS, "cn-hangzhou", "1")
