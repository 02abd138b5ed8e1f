"""Prometheus metrics of the front door, served on its own port at `GET /metrics` (no auth).

Each front door process keeps its own registry: scrape every replica (one pod, one process).
Requests are counted by a middleware that sees every RPC answer, errors included:

- `openfnf_api_requests_total{action, code}`: code is `Success` or the error `Code` of the body;
- `openfnf_api_request_seconds{action}`: latency histogram (long polls included, up to 60 s);
- `openfnf_api_requests_in_flight`: requests being handled now;
- `openfnf_api_throttled_total{action}`: answers with Code `ResourceThrottled`;
- `openfnf_executions_total{status}`: executions this front door ran to their end at their start
  (common/execmetrics.py, common/purestart.py), counted as the workers count theirs.

The throttled count is derived from the answers, so the throttling code needs to do nothing;
`THROTTLED` stays public for a caller that rejects work in another way (use `throttled(action)`).
"""
from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from api.actions import ALL_ACTIONS
from api.protocol import ACTION
from common import execmetrics  # noqa: F401 - registers openfnf_executions_total on this registry

THROTTLED_CODE = "ResourceThrottled"
UNKNOWN = "unknown"  # an Action that is not one of the API's (bounded label values)
NOT_RPC = "-"  # a request that never reached dispatch (bad path, unreadable request)
_ACTIONS = frozenset(ALL_ACTIONS)
_SKIP = frozenset({"/metrics", "/healthz", "/readyz"})  # probes and scrapes are not API traffic

REQUESTS = Counter("openfnf_api_requests", "RPC requests answered, by action and result code.", ["action", "code"])
LATENCY = Histogram(
    "openfnf_api_request_seconds",
    "Time to answer an RPC request, by action (long polls included).",
    ["action"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IN_FLIGHT = Gauge("openfnf_api_requests_in_flight", "RPC requests being handled now.")
THROTTLED = Counter("openfnf_api_throttled", "Requests refused with ResourceThrottled, by action.", ["action"])


def throttled(action: str) -> None:
    """Count one throttled request of `action` (for refusals that do not pass through the RPC answer)."""
    THROTTLED.labels(action=action_label(action)).inc()


def action_label(action: str | None) -> str:
    """A bounded label value for a request's Action."""
    if not action:
        return NOT_RPC
    return action if action in _ACTIONS else UNKNOWN


def _code(response: web.StreamResponse) -> str:
    if response.status < 400:
        return "Success"
    body = getattr(response, "body", None)
    if isinstance(body, bytes | bytearray) and body[:1] == b"{":
        try:
            code = json.loads(body).get("Code")
        except ValueError:
            code = None
        if isinstance(code, str) and code:
            return code
    return str(response.status)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time every RPC request; the outermost middleware, so it sees error answers too."""
    if request.path in _SKIP:
        return await handler(request)
    started = time.perf_counter()
    IN_FLIGHT.inc()
    code = "500"
    try:
        response = await handler(request)
        code = _code(response)
        return response
    except web.HTTPException as exc:
        code = str(exc.status)
        raise
    except asyncio.CancelledError:  # the client went away, or the drain deadline passed
        code = "Cancelled"
        raise
    finally:
        IN_FLIGHT.dec()
        action = action_label(request.get(ACTION) or request.query.get("Action"))
        _requests(action, code).inc()
        _latency(action).observe(time.perf_counter() - started)
        if code == THROTTLED_CODE:
            THROTTLED.labels(action=action).inc()


# The labelled series, looked up once each (labels() costs a lock and a tuple per call); both label
# sets are bounded (the API's actions, its error codes and HTTP statuses).
@functools.cache
def _requests(action: str, code: str) -> Counter:
    return REQUESTS.labels(action=action, code=code)


@functools.cache
def _latency(action: str) -> Histogram:
    return LATENCY.labels(action=action)


def make_metrics_handler(registry: CollectorRegistry = REGISTRY) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /metrics` in the Prometheus text format."""

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics


def setup(app: web.Application) -> None:
    """Add `GET /metrics` to the front door (the middleware is listed in make_app)."""
    app.router.add_get("/metrics", make_metrics_handler(), allow_head=False)
