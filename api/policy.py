"""Which resource an API call acts on, and the policy check of the front door (the engine: common/policy.py)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from api.actionspec import SPECS, Scope
from common.errors import AccessDenied
from common.policy import PolicyError, Statement, allowed, parse_policy

__all__ = ["PolicyError", "Statement", "allowed", "authorize", "parse_policy", "resource_arn"]


def resource_arn(action: str, params: Mapping[str, str], region: str, account: str) -> str:
    """The resource name a call acts on: `acs:fnf:{region}:{account}:flow/{name}[/execution/{name}]`."""
    spec = SPECS[action]
    prefix = f"acs:fnf:{region}:{account}:"
    if spec.scope is Scope.FLOW:
        return f"{prefix}flow/{params.get(spec.flow_param, '')}"
    if spec.scope is Scope.EXECUTION:
        return f"{prefix}flow/{params.get(spec.flow_param, '')}/execution/{params.get(spec.execution_param, '')}"
    if spec.scope is Scope.ALL_FLOWS:
        return f"{prefix}flow/*"
    if spec.scope is Scope.TASK:
        return f"{prefix}flow/*/execution/*"
    return f"{prefix}*"


def authorize(statements: Iterable[Statement] | None, action: str, params: Mapping[str, str], region: str, account: str) -> None:
    """403 AccessDenied unless the policy allows this call."""
    resource = resource_arn(action, params, region, account)
    if not allowed(statements, action, resource):
        raise AccessDenied()
