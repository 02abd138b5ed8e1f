"""Old-syntax data rules: inputMappings/outputMappings/errorMappings over `$input`, `$local`, `$context`.

Data is never mutated in place anywhere in the interpreter, so a mapped value may share structure
with the object it came from.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from common.fdl.model import Mapping
from common.fdl.paths import MISSING, parse_path, resolve

_ROOTS = {"$input": "input", "$local": "local", "$context": "context"}
_REFERENCE = re.compile(r"^\$(input|local|context)(?=$|[.\[])")

MappingFn = Callable[[dict[str, Any]], dict[str, Any]]


def is_reference(source: object) -> bool:
    """Whether a mapping source refers to data (`$input...`, `$local...`, `$context...`) rather than being a constant."""
    return isinstance(source, str) and _REFERENCE.match(source.strip()) is not None


def compile_mappings(mappings: tuple[Mapping, ...]) -> MappingFn:
    """Compile `{target, source}` entries into a function of {"input", "local", "context"}.

    A source string starting with `$input`, `$local` or `$context` is a reference; anything else
    is a constant. A reference to absent data gives null.
    """
    getters: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
    for m in mappings:
        getters.append((m.target, _getter(m.source)))
    return lambda data: {target: get(data) for target, get in getters}


def _getter(source: Any) -> Callable[[dict[str, Any]], Any]:
    if not is_reference(source):
        return lambda data: source
    root, segments = parse_path(source)
    key = _ROOTS[root]

    def get(data: dict[str, Any]) -> Any:
        value = resolve(data.get(key, {}), segments)
        return None if value is MISSING else value

    return get


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A shallow merge where `over` wins (local over input, later step outputs over earlier)."""
    if not over:
        return base
    if not base:
        return over
    out = dict(base)
    out.update(over)
    return out
