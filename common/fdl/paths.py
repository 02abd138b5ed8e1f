"""JSONPath-style references into data: `$input.a.b[0]`, `$local[*].x`, `$.x`, `$Input.a`, `$Context.Execution.Input`.

A path is a root name followed by `.field`, `[index]`, `['quoted field']` or `[*]` segments. With a
`[*]` the result is the list of every match (flattened, as JSONPath returns matches).
"""
from __future__ import annotations

import re
from typing import Any

_SEGMENT = re.compile(r"""\.([^.\[\]]+)|\[(\d+|\*|'[^']*'|"[^"]*")\]""")
_ROOT = re.compile(r"\$[A-Za-z]*")


class PathError(ValueError):
    """A path string that is not a valid reference."""


MISSING = object()  # what a path into absent data yields


def parse_path(text: str) -> tuple[str, tuple[str | int, ...]]:
    """Split a path into its root (`$input`, `$`, `$Input`, ...) and segments (`*` for a wildcard)."""
    text = text.strip()
    root_match = _ROOT.match(text)
    if root_match is None:
        raise PathError(f"path '{text}' must start with '$'")
    pos = root_match.end()
    segments: list[str | int] = []
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None:
            raise PathError(f"path '{text}' is malformed at position {pos}")
        if m.group(1) is not None:
            segments.append(m.group(1))
        else:
            token = m.group(2)
            if token == "*":
                segments.append("*")
            elif token[0] in "'\"":
                segments.append(token[1:-1])
            else:
                segments.append(int(token))
        pos = m.end()
    return root_match.group(0), tuple(segments)


def resolve(value: Any, segments: tuple[str | int, ...]) -> Any:
    """Follow segments from value; MISSING where the data has no such member."""
    if "*" not in segments:
        for seg in segments:
            value = _step(value, seg)
            if value is MISSING:
                return MISSING
        return value
    matches: list[Any] = [value]
    for seg in segments:
        nxt: list[Any] = []
        for item in matches:
            if seg == "*":
                if isinstance(item, list):
                    nxt.extend(item)
                elif isinstance(item, dict):
                    nxt.extend(item.values())
            else:
                got = _step(item, seg)
                if got is not MISSING:
                    nxt.append(got)
        matches = nxt
    return matches


def _step(value: Any, seg: str | int) -> Any:
    if isinstance(seg, int):
        if isinstance(value, list) and -len(value) <= seg < len(value):
            return value[seg]
        return MISSING
    if isinstance(value, dict) and seg in value:
        return value[seg]
    return MISSING
