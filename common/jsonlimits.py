"""JSON as it enters and leaves the service: nesting bounded, numbers finite (NaN and Infinity are not JSON).

Every room reads outside JSON (parameters, task results, callback outputs) through `loads` or
`normalize`, and writes JSON through `dumps`, so one rule holds everywhere (docs/compatibility.md
"JSON limits"). No I/O.
"""
from __future__ import annotations

import json
import math
from typing import Any

DEFAULT_MAX_DEPTH = 64  # Settings.max_json_depth: levels of objects and arrays
HARD_MAX_DEPTH = 500  # the most Settings.max_json_depth may be: far below Python's recursion limit (~1000 frames)


class JsonRefused(Exception):  # noqa: N818 - a refusal, not a bug: callers answer it as a 400 or a failed task
    """Text or a value that is JSON this service does not take: nested too deep, NaN or Infinity, not JSON-able.

    Its message completes a sentence whose subject is the value: f"{name} {exc}."
    """


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"holds {name}, which is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise JsonRefused(f"holds {text[:40]}, out of the range of a JSON number")
    return value


# One decoder for every read: json.loads with hooks builds a decoder per call (twice the time of a small read).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether objects and arrays nest deeper than `max_depth` levels in `value` (iterative: any depth is safe)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def loads(text: str | bytes, max_depth: int) -> Any:
    """Parse JSON text; ValueError if it is not JSON, JsonRefused if it nests deeper than `max_depth` or holds NaN/Infinity."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise JsonRefused(f"nests deeper than {max_depth} levels") from None
    if isinstance(value, (dict, list)):
        # Each level needs a bracket: most texts skip the walk.
        if text.count("{") + text.count("[") > max_depth and too_deep(value, max_depth):
            raise JsonRefused(f"nests deeper than {max_depth} levels")
    return value


load_json = loads  # the name modules that also use json.loads import it by


def normalize(value: Any, max_depth: int) -> Any:
    """A Python value (a function's result) as the JSON value it stands for: tuples become lists, keys strings.

    JsonRefused if it is not JSON-able (a set, an object), holds NaN/Infinity, refers to itself or
    nests deeper than `max_depth`.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except RecursionError:
        raise JsonRefused(f"nests deeper than {max_depth} levels") from None
    except (ValueError, TypeError) as exc:  # NaN, Infinity, a circular reference; a set, an object
        raise JsonRefused(f"is not JSON ({exc})") from None
    try:
        return loads(text, max_depth)
    except ValueError as exc:  # an int with too many digits to read back
        raise JsonRefused(f"is not JSON ({exc})") from None


def dumps(value: Any) -> str:
    """Compact JSON, the form every JSON value is stored and answered in; ValueError for NaN/Infinity, never written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
