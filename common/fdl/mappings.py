"""Old-syntax data rules: inputMappings/outputMappings over `$input`, `$local`, `$context`."""
from __future__ import annotations

import copy
import re
from typing import Any

from common.fdl.model import Mapping
from common.fdl.paths import MISSING, parse_path, resolve

_ROOTS = {"$input": "input", "$local": "local", "$context": "context"}
_REFERENCE = re.compile(r"^\$(input|local|context)(?=$|[.\[])")


def is_reference(source: object) -> bool:
    """Whether a mapping source refers to data (`$input...`, `$local...`, `$context...`) rather than being a constant."""
    return isinstance(source, str) and _REFERENCE.match(source.strip()) is not None


def apply_mappings(mappings: tuple[Mapping, ...], data: dict[str, Any]) -> dict[str, Any]:
    """Build an object from `{target, source}` entries; data holds `input`, `local`, `context`.

    A source string starting with `$input`, `$local` or `$context` is a reference; anything else
    is a constant. A reference to absent data gives null.
    """
    out: dict[str, Any] = {}
    for m in mappings:
        source = m.source
        if is_reference(source):
            root, segments = parse_path(source)
            value = resolve(data.get(_ROOTS[root], {}), segments)
            out[m.target] = None if value is MISSING else copy.deepcopy(value)
        else:
            out[m.target] = copy.deepcopy(source)
    return out


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A shallow merge where `over` wins (local over input, later step outputs over earlier)."""
    out = dict(base)
    out.update(over)
    return out
