"""New-syntax `HTTP:Request` tasks: a real HTTP call whose status, headers and body become the task output."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from common import tracing
from common.jsonlimits import JsonRefused
from worker.functions import parse_result
from worker.outcomes import INVALID_RESULT, Outcome

HTTP_TIMEOUT = "HTTP.Timeout"  # no answer within the task timeout
HTTP_CONNECTION = "HTTP.ConnectionError"  # refused, unreachable, bad address
HTTP_INVALID = "HTTP.InvalidParameters"  # the task's Parameters cannot make a request
DEFAULT_TIMEOUT_S = 60.0


def http_request(params: dict[str, Any], timeout_s: float | None) -> Outcome:
    """Make the request Parameters describe: method, url, headers, query, body.

    Any answer, 4xx and 5xx included, is a success carrying {StatusCode, Headers, Body}; flows
    branch on StatusCode. Only a timeout or a connection failure is a task error.
    """
    url = params.get("url") or params.get("Url") or params.get("URL")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Outcome.failed(HTTP_INVALID, "Parameters.url must be an http:// or https:// URL")
    method = str(params.get("method") or params.get("Method") or "GET").upper()
    query = params.get("query") or params.get("Query") or {}
    if isinstance(query, dict) and query:
        sep = "&" if urllib.parse.urlsplit(url).query else "?"
        url = url + sep + urllib.parse.urlencode({k: str(v) for k, v in query.items()})
    headers = {str(k): str(v) for k, v in (params.get("headers") or params.get("Headers") or {}).items()}
    body = params.get("body", params.get("Body"))
    data: bytes | None = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = str(body).encode()
    tracing.inject(headers)  # traceparent of the activity's span, when tracing is on
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    limit = timeout_s or DEFAULT_TIMEOUT_S
    try:
        with urllib.request.urlopen(request, timeout=limit) as resp:  # noqa: S310 - the flow chose the URL
            return Outcome.ok(_answer(resp.status, dict(resp.headers.items()), resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            return Outcome.ok(_answer(exc.code, dict(exc.headers.items()), exc.read()))
        except JsonRefused as refused:
            return Outcome.failed(INVALID_RESULT, f"the body {method} {url} answered {refused}")
    except JsonRefused as exc:
        return Outcome.failed(INVALID_RESULT, f"the body {method} {url} answered {exc}")
    except TimeoutError:
        return Outcome.failed(HTTP_TIMEOUT, f"{method} {url} did not answer within {limit:g} s")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return Outcome.failed(HTTP_TIMEOUT, f"{method} {url} did not answer within {limit:g} s")
        return Outcome.failed(HTTP_CONNECTION, f"{method} {url} failed: {reason}")


def _answer(status: int, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    return {"StatusCode": status, "Headers": headers, "Body": parse_result(raw)}
