"""Example functions, called like Function Compute's Python runtime: handler(event_bytes, context).

`context.credentials` and `context.endpoint` let a function call OpenFnF back with the official SDK
(`pip install alibabacloud_fnf20190315`), as FC functions do with their role's credentials.
"""
from __future__ import annotations

import json
from typing import Any


def _client(context: Any) -> Any:
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    creds = context.credentials
    return Client(Config(access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
                         endpoint=context.endpoint, protocol="http"))


def approve(event: bytes, context: Any) -> dict[str, Any]:
    """The callback example: the task waits until this function reports its token."""
    from alibabacloud_fnf20190315 import models

    data = json.loads(event)
    output = json.dumps({"approved": True, "order": data["order"]})
    _client(context).report_task_succeeded(models.ReportTaskSucceededRequest(task_token=data["token"], output=output))
    return {}


def reserve(event: bytes, context: Any) -> dict[str, Any]:
    """A plain function: reserves the items it is given."""
    items = json.loads(event).get("items", [])
    return {"reserved": len(items)}


def report_to_parent(event: bytes, context: Any) -> dict[str, Any]:
    """Runs in a child flow and completes the parent's waiting task with the parent's token: succeeded
    with the sorted items, or failed (Example.MissingItems) when the parent was started without them."""
    from alibabacloud_fnf20190315 import models

    data = json.loads(event)
    items = data.get("items")
    if not isinstance(items, list):
        _client(context).report_task_failed(models.ReportTaskFailedRequest(
            task_token=data["parent_token"], error="Example.MissingItems",
            cause='example_parent needs a list of items in its input, e.g. {"items": ["b", "a"]}',
        ))  # fmt: skip
        return {"reported": False}
    output = json.dumps({"confirmed": sorted(items)})
    _client(context).report_task_succeeded(models.ReportTaskSucceededRequest(task_token=data["parent_token"], output=output))
    return {"reported": True}
