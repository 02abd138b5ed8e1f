"""Typed reading of RPC parameters (all arrive as strings), with the documented errors."""
from __future__ import annotations

import json
import re
from typing import Any

from common import jsonlimits
from common.errors import InvalidArgument, MissingRequiredParams
from common.jsonlimits import DEFAULT_MAX_DEPTH

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


def required(params: dict[str, str], name: str) -> str:
    """A parameter that must be present and non-empty."""
    value = params.get(name)
    if value is None or value == "":
        raise MissingRequiredParams(name)
    return value


def optional(params: dict[str, str], name: str, default: str = "") -> str:
    """A parameter that may be absent."""
    value = params.get(name)
    return default if value is None else value


def resource_name(value: str, param: str) -> str:
    """A flow, execution or schedule name: letters, digits, `_`, `-`; starts with a letter or `_`; 1-128 chars."""
    if NAME_RE.match(value):
        return value
    if not value or len(value) > 128:
        why = "must be 1 to 128 characters long"
    elif not (value[0].isascii() and (value[0].isalpha() or value[0] == "_")):
        why = "must start with a letter or an underscore"
    else:
        why = "may contain only letters, digits, underscores (_) and hyphens (-)"
    raise InvalidArgument(message=f"{param} '{value[:140]}' is invalid: it {why}.")


def integer(params: dict[str, str], name: str, *, default: int, lo: int, hi: int) -> int:
    """An integer parameter within [lo, hi]."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidArgument(message=f"{name} must be an integer, not '{raw[:40]}'.") from None
    if not lo <= value <= hi:
        raise InvalidArgument(message=f"{name} must be between {lo} and {hi}, not {value}.")
    return value


def boolean(params: dict[str, str], name: str, default: bool = False) -> bool:
    """A boolean sent as true/false in any letter case (the Python SDK sends True/False)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise InvalidArgument(message=f"{name} must be true or false, not '{raw[:40]}'.")


def json_value(raw: str, name: str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """A parameter carrying JSON text: at most `max_depth` levels deep (Settings.max_json_depth), no NaN or
    Infinity, its strings real Unicode (no lone surrogate escapes)."""
    try:
        value = jsonlimits.loads(raw, max_depth)
    except jsonlimits.JsonRefused as exc:
        raise InvalidArgument(message=f"{name} {exc}.") from None
    except ValueError as exc:
        raise InvalidArgument(message=f"{name} is not valid JSON: {exc.args[0] if exc.args else exc}.") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # "\udc80" parses to a lone surrogate, which no UTF-8 store can hold
        raise InvalidArgument(message=f"{name} holds a \\u escape that is not a Unicode character (a lone surrogate).") from None
    return value


def json_object(raw: str, name: str, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """A parameter carrying a JSON object as a string (see json_value)."""
    value = json_value(raw, name, max_depth)
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise InvalidArgument(message=f"{name} must be a JSON object, not {kind}.")
    return value
