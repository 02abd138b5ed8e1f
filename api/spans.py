"""The front door's spans (common/tracing.py): one per request, and a task's callback report."""
from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from common import keys, tracing
from common.records import as_str
from common.tokens import TaskRef

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middlewares() -> list[Any]:
    """The request-span middleware while tracing is on (put first: it sees every answer), else none."""
    return [request_span] if tracing.request_spans() else []


@web.middleware
async def request_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SERVER span per request, named after its RPC action once it is known (tracing.request_action),
    with the HTTP status and, for an error answer, its `Code`; probes and scrapes get none."""
    if request.path in tracing.UNTRACED_PATHS:
        return await handler(request)
    attributes = {"http.request.method": request.method, "url.path": request.path, "url.scheme": request.scheme}
    if request.remote:
        attributes["client.address"] = request.remote
    with tracing.server_span(request.method, request.headers, attributes) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:  # a 4xx is the caller's error, not the server's: the span stays OK
            tracing.failed(span, _error_code(response) or str(response.status))
        elif response.status >= 400:
            span.set_attribute("openfnf.error", _error_code(response) or str(response.status))
        return response


def _error_code(response: web.StreamResponse) -> str:
    body = getattr(response, "body", None)
    try:
        code = json.loads(body).get("Code") if isinstance(body, bytes | bytearray) else None
    except (ValueError, AttributeError):
        return ""
    return code if isinstance(code, str) else ""

REPORT = "openfnf.report"

Report = Callable[[Any, str, TaskRef, dict[str, Any]], Awaitable[dict[str, Any]]]


def traced_report(report: Report) -> Report:
    """`_report(call, token, ref, event)` in an `openfnf.report` span in the execution's trace,
    linked to the task that waited (its activity span, kept beside the token's state) and to the
    request that carried the report (the client's own trace)."""

    @functools.wraps(report)
    async def wrapper(call: Any, token: str, ref: TaskRef, event: dict[str, Any]) -> dict[str, Any]:
        if tracing.tracer is None:
            return await report(call, token, ref, event)
        record_tp, flow, task_tp = await _stored(call.store.redis, ref)
        attributes = {
            tracing.FLOW: flow, tracing.EXECUTION: ref.execution, "openfnf.task.id": ref.task_id,
            "openfnf.report.ok": bool(event.get("ok")), "openfnf.reporter": "client",
        }  # fmt: skip
        with tracing.span(REPORT, attributes, parent=record_tp, links=[task_tp], link_current=True) as span:
            try:
                return await report(call, token, ref, event)
            except Exception as exc:
                tracing.failed(span, getattr(exc, "code", type(exc).__name__), str(exc))
                raise

    return wrapper


async def _stored(redis: Any, ref: TaskRef) -> tuple[str, str, str]:
    """The execution's traceparent and flow name, and the waiting task's traceparent."""
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.execution(ref.tag), "tp", "flow")
    pipe.hget(keys.tasks(ref.tag), f"tp:{ref.task_id}")
    (tp, flow), task_tp = await pipe.execute()
    return as_str(tp), as_str(flow), as_str(task_tp)
