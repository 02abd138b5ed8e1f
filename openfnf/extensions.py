"""OpenFnF's extension actions (RedriveExecution, issue 18) through the official SDK's generic call.

The SDK has no method for an action the cloud lacks; its `call_api` signs and sends any RPC action
(POST, form body), as every other action goes.
"""
from __future__ import annotations

from typing import Any

API_VERSION = "2019-03-15"


def call_action(sdk: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Call `action` with `params` through an `alibabacloud_fnf20190315` client; the response body (JSON)."""
    from alibabacloud_tea_openapi import models as open_api_models
    from alibabacloud_tea_util.models import RuntimeOptions

    spec = open_api_models.Params(
        action=action, version=API_VERSION, protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )  # fmt: skip
    request = open_api_models.OpenApiRequest(body={k: str(v) for k, v in params.items() if v is not None})
    answer = sdk.call_api(spec, request, RuntimeOptions())
    body: dict[str, Any] = dict(answer.get("body") or {})
    return body


def redrive_execution(sdk: Any, flow: str, name: str) -> dict[str, Any]:
    """RedriveExecution(FlowName, ExecutionName): the execution, Running again, with its RedriveCount."""
    return call_action(sdk, "RedriveExecution", {"FlowName": flow, "ExecutionName": name})
