"""Definition text -> a plain JSON-shaped document (dicts with str keys, lists, str, int, float, bool, None).

YAML can say more than JSON: timestamps, binary, sets, non-string keys, aliases (shared or even
recursive nodes). The interpreter stores data as JSON, so everything is normalised here once, and
the walk is bounded so that no document (alias bombs, absurd nesting) can exhaust the parser.
"""
from __future__ import annotations

import base64
import datetime as dt
import math
from typing import Any

import yaml

from common.fdl.errors import FdlError

MAX_NODES = 200_000  # nodes after alias expansion; a real flow has a few thousand at most
MAX_DEPTH = 200  # nesting of mappings and lists


def load_document(text: str) -> Any:
    """Parse YAML (JSON is YAML too) into a JSON-shaped value; FdlError for anything else."""
    if not isinstance(text, str):
        raise FdlError("definition must be text")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["syntax error"])[0]
        raise FdlError(f"definition is not valid YAML{where}: {problem}") from None
    except RecursionError:  # the YAML parser recurses once per level: far past MAX_DEPTH
        raise FdlError(f"definition: nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, TypeError, OverflowError) as exc:  # bad timestamps, ...
        raise FdlError(f"definition is not valid YAML: {type(exc).__name__}: {str(exc)[:200]}") from None
    return _Normaliser().value(raw, "", 0, ())


class _Normaliser:
    def __init__(self) -> None:
        self.nodes = 0

    def value(self, raw: Any, where: str, depth: int, parents: tuple[int, ...]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FdlError(f"definition is too large: more than {MAX_NODES} values once YAML aliases are expanded")
        if raw is None or isinstance(raw, (bool, str)):
            return raw
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float):
            if math.isnan(raw) or math.isinf(raw):
                raise FdlError(f"{where or 'definition'}: {raw} is not a JSON number")
            return raw
        if isinstance(raw, dt.datetime):
            return _rfc3339(raw)
        if isinstance(raw, dt.date):
            return raw.isoformat()
        if isinstance(raw, bytes):
            return base64.b64encode(raw).decode("ascii")
        if isinstance(raw, (dict, list, tuple, set)):
            if depth >= MAX_DEPTH:
                shown = where if len(where) <= 120 else where[:60] + "..." + where[-20:]
                raise FdlError(f"{shown or 'definition'}: nested more than {MAX_DEPTH} levels deep")
            if id(raw) in parents:
                raise FdlError(f"{where or 'definition'}: a YAML alias refers to itself")
            inner = (*parents, id(raw))
            if isinstance(raw, dict):
                out: dict[str, Any] = {}
                for key, item in raw.items():
                    name = _key(key, where)
                    out[name] = self.value(item, f"{where}.{name}" if where else name, depth + 1, inner)
                return out
            items = sorted(raw, key=repr) if isinstance(raw, set) else raw
            return [self.value(item, f"{where}[{i}]", depth + 1, inner) for i, item in enumerate(items)]
        raise FdlError(f"{where or 'definition'}: a {type(raw).__name__} value is not JSON")


def _key(key: Any, where: str) -> str:
    """Mapping keys as JSON has them: YAML's `yes:` / `1:` keys become "true" / "1"."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float) and not (math.isnan(key) or math.isinf(key)):
        return repr(key)
    if isinstance(key, dt.datetime):
        return _rfc3339(key)
    if isinstance(key, dt.date):
        return key.isoformat()
    raise FdlError(f"{where or 'definition'}: a mapping key must be a string, not {type(key).__name__}")


def _rfc3339(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat()
    return text.replace("+00:00", "Z")
