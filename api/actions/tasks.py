"""ReportTaskSucceeded and ReportTaskFailed: a waiting task's result, delivered once through its token."""
from __future__ import annotations

from typing import Any

from api.actions.context import Call
from api.params import json_value, optional, required
from api.spans import traced_report
from common import control, jsonlimits
from common.errors import InvalidArgument
from common.reports import failed_event, succeeded_event
from common.tokens import InvalidToken, TaskRef, parse_token


def _token(call: Call) -> tuple[str, TaskRef]:
    token = required(call.params, "TaskToken")
    try:
        return token, parse_token(call.settings.token_secret, token)
    except InvalidToken:
        raise InvalidArgument(message="TaskToken is invalid: it is not a task token this service issued.") from None


@traced_report  # an openfnf.report span when tracing is on (api/spans.py)
async def _report(call: Call, token: str, ref: TaskRef, event: dict[str, Any]) -> dict[str, Any]:
    event_id = await control.report(
        call.store, call.publisher.publish, call.settings, account=call.account, token=token, ref=ref, event=event, now=call.now
    )
    return {"EventId": event_id}


async def report_task_succeeded(call: Call) -> dict[str, Any]:
    """ReportTaskSucceeded: Output becomes the task's result."""
    token, ref = _token(call)
    raw = required(call.params, "Output")
    try:
        jsonlimits.loads(raw, call.settings.max_json_depth)
    except jsonlimits.JsonRefused:
        output = json_value(raw, "Output", call.settings.max_json_depth)  # raises InvalidArgument naming Output
    except ValueError:
        output = raw  # text that is not JSON is reported as text (docs/compatibility.md)
    else:
        output = json_value(raw, "Output", call.settings.max_json_depth)
    return await _report(call, token, ref, succeeded_event(ref.task_id, output))


async def report_task_failed(call: Call) -> dict[str, Any]:
    """ReportTaskFailed: Error and Cause go through the task's retry and catch."""
    token, ref = _token(call)
    error = required(call.params, "Error")
    cause = optional(call.params, "Cause")
    if len(error) > 128:
        raise InvalidArgument(message="Error must be 1 to 128 characters long.")
    if len(cause) > 4096:
        raise InvalidArgument(message="Cause must be at most 4096 characters long.")
    return await _report(call, token, ref, failed_event(ref.task_id, error, cause))
