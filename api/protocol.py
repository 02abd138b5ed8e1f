"""The Alibaba RPC request shape: Action, Version and parameters from query, form or JSON body."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from common import jsonlimits
from common.errors import (
    APIVersionNotSupported,
    EntityTooLarge,
    InvalidArgument,
    MissingRequiredParams,
    PreconditionFailed,
    RequestTimeout,
    UnsupportedMediaType,
)
from common.settings import Settings

API_VERSION = "2019-03-15"

# What the pipeline keeps on each request (typed keys, as aiohttp recommends).
REQUEST_ID = web.RequestKey("request_id", str)
ACTION = web.RequestKey("action", str)  # the metrics middleware labels by it
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
V1, ACS3, NONE = "v1", "acs3", "none"  # what signature_kind() answers
READ_HEADERS = frozenset({"authorization", "content-type", "host", "if-match"})  # besides every x-acs-* header


@dataclass
class RpcRequest:
    """One parsed API call."""

    action: str
    method: str
    query: dict[str, str]
    form: dict[str, str]  # body parameters (form or JSON), signed by signature v1 with the query
    params: dict[str, str] = field(default_factory=dict)  # everything, body over query
    headers: Mapping[str, str] = field(default_factory=dict)  # as received (case-insensitive for aiohttp requests)
    path: str = "/"  # raw path, as signed by ACS3
    raw_query: str = ""  # raw query string, as signed by ACS3
    body: bytes = b""  # raw body, hashed by ACS3


def server_limits(settings: Settings) -> dict[str, Any]:
    """aiohttp connection settings that keep slow, stalled or oversized clients from holding the server.

    `keepalive_timeout` also bounds how long a connection may take to send its request headers:
    aiohttp arms it when the connection opens and closes a connection still waiting for headers.
    """
    return {
        "keepalive_timeout": settings.keepalive_timeout_seconds,
        "max_line_size": settings.max_line_bytes,
        "max_field_size": settings.max_field_bytes,
        "max_headers": settings.max_headers,
        "lingering_time": settings.lingering_seconds,
    }


def _pairs(text: str) -> dict[str, str]:
    """Parameters of a query string or form body, as parse_qsl(keep_blank_values=True, errors="strict")
    reads them (`+` is a space, a name without `=` has the value ''), the first of a repeated one."""
    out: dict[str, str] = {}
    if not text:
        return out
    try:
        for pair in text.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            if "%" in name or "+" in name:
                name = unquote(name.replace("+", " "), errors="strict")
            if "%" in value or "+" in value:
                value = unquote(value.replace("+", " "), errors="strict")
            out.setdefault(name, value)  # a repeated parameter: the first one counts
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgument(message="The request parameters are not valid percent-encoded UTF-8.") from None
    return out


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The body, refused with EntityTooLarge as soon as it passes `limit` bytes (never read whole first).

    A body that does not arrive within `timeout` seconds is refused with RequestTimeout.
    """
    if request.content_length is not None and request.content_length > limit:
        raise EntityTooLarge(limit)
    if request.content.is_eof():  # the whole body came with the headers (most requests): nothing to wait for
        body = request.content.read_nowait()
        if len(body) > limit:
            raise EntityTooLarge(limit)
        return body
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise EntityTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"{timeout:g}") from None
    return b"".join(chunks)


def signature_kind(query: Mapping[str, str], body: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """How a request says it is signed: V1 (a `Signature` parameter), ACS3 (an Authorization header), or NONE.

    api/auth.py verifies the kind named here, so the rule that picks the action and the one that
    checks the signature are one rule.
    """
    if "Signature" in query or "Signature" in body:
        return V1
    if headers.get("Authorization"):
        return ACS3
    return NONE


def _signed_name(name: str, header: str, kind: str, request: web.Request, query: dict[str, str], body: dict[str, str]) -> str:
    """Action or Version as the signature covers it (docs/compatibility.md "What runs is what was signed").

    Signature v1 signs the query and body parameters, not the headers: the value is the parameter
    (body over query, as the signers merge them), and an x-acs-* header naming another one is refused.
    ACS3 signs the x-acs-* headers: the header is the value, and a parameter naming another one is
    refused. Names compare in any letter case (pop-core signs `Action=ListFlows` and sends
    `x-acs-action: listFlows`).
    """
    in_params = (body[name] if name in body else query.get(name)) or ""
    in_header = request.headers.get(header) or ""
    if in_params and in_header and in_params.lower() != in_header.lower():
        raise InvalidArgument(message=f"{name} '{in_params[:64]}' and header {header} '{in_header[:64]}' disagree.")
    if kind == ACS3:
        return in_header or in_params
    return in_params  # v1 (or unsigned, refused by api/auth.py): an unsigned header never names what runs


def _utf8(text: str) -> bool:
    """Whether text is real UTF-8 (aiohttp hands undecodable header bytes over as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_headers(request: web.Request) -> None:
    """The headers this API reads must be UTF-8: they end up in signatures, messages and Redis keys."""
    for name, value in request.headers.items():
        if value.isascii():  # nearly every header: nothing to check
            continue
        low = name.lower()
        if (low.startswith("x-acs-") or low in READ_HEADERS) and not _utf8(value):
            raise InvalidArgument(message=f"The value of header {name[:64]} is not valid UTF-8.")


async def parse_request(
    request: web.Request, max_bytes: int, read_timeout: float | None = None, max_json_depth: int = jsonlimits.DEFAULT_MAX_DEPTH
) -> RpcRequest:
    """Parse the HTTP request into an RpcRequest, or raise the documented error."""
    _check_headers(request)
    # The raw query as sent: the signature covers exactly these bytes once decoded.
    path, _, raw_query = request.raw_path.partition("?")
    raw_query = raw_query.partition("#")[0]
    query = _pairs(raw_query)
    body = await read_body(request, max_bytes, read_timeout)
    params_in_body: dict[str, str] = {}
    if body:
        ctype = request.content_type or ""
        if ctype == FORM:
            try:
                params_in_body = _pairs(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidArgument(message="The form body is not valid UTF-8.") from None
        elif ctype == JSON:
            params_in_body = _json_params(body, max_json_depth)
        else:
            raise UnsupportedMediaType(ctype[:100] or "(none)")
    for name in query.keys() & params_in_body.keys():
        if query[name] != params_in_body[name]:
            # Signers merge the two differently (body over query, or the other way): one meaning only.
            raise InvalidArgument(message=f"Parameter {name[:64]} is in both the query and the body, with different values.")
    kind = signature_kind(query, params_in_body, request.headers)
    action = _signed_name("Action", "x-acs-action", kind, request, query, params_in_body)
    if not action:
        raise MissingRequiredParams("Action")
    version = _signed_name("Version", "x-acs-version", kind, request, query, params_in_body)
    if not version:
        raise MissingRequiredParams("Version")
    if version != API_VERSION:
        raise APIVersionNotSupported(version[:64])
    if_match = request.headers.get("If-Match")
    if if_match is not None and if_match.strip() != "*":
        # No resource of this API carries an ETag, so no entity tag can match (RFC 9110 13.1.1).
        raise PreconditionFailed(f"If-Match {if_match[:64]} matches no current entity tag.")
    params = {**query, **params_in_body}
    return RpcRequest(
        action=action,
        method=request.method,
        query=query,
        form=params_in_body,
        params=params,
        headers=request.headers,
        path=path,
        raw_query=raw_query,
        body=body,
    )


def _json_params(body: bytes, max_depth: int) -> dict[str, str]:
    """The parameters of a JSON body; a value nested deeper than `max_depth` levels is refused by name."""
    try:
        doc = jsonlimits.loads(body, jsonlimits.HARD_MAX_DEPTH + 1)
    except jsonlimits.JsonRefused as exc:
        raise InvalidArgument(message=f"The JSON body {exc}.") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(message="The JSON body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(message="The JSON body must be an object of parameters.")
    for key, value in doc.items():
        if jsonlimits.too_deep(value, max_depth):
            raise InvalidArgument(message=f"{key[:64]} nests deeper than {max_depth} levels.")
    if not _utf8(json.dumps(doc, ensure_ascii=False)):
        raise InvalidArgument(message="The JSON body is not valid UTF-8 text: it escapes an unpaired surrogate.")
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
