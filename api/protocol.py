"""The Alibaba RPC request shape: Action, Version and parameters from query, form or JSON body."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from common.errors import (
    APIVersionNotSupported,
    EntityTooLarge,
    InvalidArgument,
    MissingRequiredParams,
    UnsupportedMediaType,
)

API_VERSION = "2019-03-15"
FORM = "application/x-www-form-urlencoded"


@dataclass
class RpcRequest:
    """One parsed API call."""

    action: str
    method: str
    query: dict[str, str]
    form: dict[str, str]  # form-body parameters (signed by signature v1)
    params: dict[str, str] = field(default_factory=dict)  # everything, body over query


def _pairs(text: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgument(message="The request parameters are not valid percent-encoded UTF-8.") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)  # a repeated parameter: the first one counts
    return out


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with EntityTooLarge as soon as it passes `limit` bytes (never read whole first)."""
    if request.content_length is not None and request.content_length > limit:
        raise EntityTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise EntityTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_request(request: web.Request, max_bytes: int) -> RpcRequest:
    """Parse the HTTP request into an RpcRequest, or raise the documented error."""
    query = _pairs(request.query_string)
    body = await read_body(request, max_bytes)
    form: dict[str, str] = {}
    json_params: dict[str, str] = {}
    if body:
        ctype = request.content_type or ""
        if ctype == FORM:
            try:
                form = _pairs(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidArgument(message="The form body is not valid UTF-8.") from None
        elif ctype == "application/json":
            json_params = _json_params(body)
        else:
            raise UnsupportedMediaType(ctype or "(none)")
    action = query.get("Action") or request.headers.get("x-acs-action") or form.get("Action") or json_params.get("Action")
    if not action:
        raise MissingRequiredParams("Action")
    version = query.get("Version") or request.headers.get("x-acs-version") or form.get("Version") or json_params.get("Version")
    if not version:
        raise MissingRequiredParams("Version")
    if version != API_VERSION:
        raise APIVersionNotSupported(version)
    params = {**query, **json_params, **form}
    return RpcRequest(action=action, method=request.method, query=query, form=form, params=params)


def _json_params(body: bytes) -> dict[str, str]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(message="The JSON body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(message="The JSON body must be an object of parameters.")
    out: dict[str, str] = {}
    for key, value in doc.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif value is None:
            continue
        elif isinstance(value, (int, float)):
            out[key] = str(value)
        else:  # objects and lists travel as JSON strings, as the SDKs send them
            out[key] = json.dumps(value, separators=(",", ":"))
    return out
