"""New-syntax expressions (`.$` values, `ItemsPath`, ...): compiled once, evaluated against a scope.

The scope maps roots to data: `$Input`, `$Output`, `$Context`. This module covers paths and JSON
literals; built-in functions and operators are added with the FDL issue.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from common.fdl.paths import MISSING, PathError, parse_path, resolve

ROOTS = ("$Input", "$Output", "$Context")


class ExpressionError(ValueError):
    """An expression that cannot be compiled or evaluated."""


Compiled = Callable[[dict[str, Any]], Any]


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Compiled:
    """Compile an expression string; raise ExpressionError if it is malformed."""
    src = text.strip()
    if src.startswith("$"):
        try:
            root, segments = parse_path(src)
        except PathError as exc:
            raise ExpressionError(str(exc)) from None
        if root not in ROOTS:
            raise ExpressionError(f"unknown root '{root}' in '{src}' (use $Input, $Output or $Context)")

        def path_expr(scope: dict[str, Any]) -> Any:
            if root not in scope:
                raise ExpressionError(f"'{root}' is not available here")
            value = resolve(scope[root], segments)
            if value is MISSING:
                raise ExpressionError(f"'{src}' refers to a field that does not exist")
            return value

        return path_expr
    try:
        literal = json.loads(src)
    except ValueError:
        raise ExpressionError(f"'{src}' is not a supported expression") from None
    return lambda scope: literal


def evaluate_constructor(template: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Build an object from a constructor: keys ending in `.$` are expressions (the suffix dropped)."""
    out: dict[str, Any] = {}
    for key, value in template.items():
        if isinstance(key, str) and key.endswith(".$") and isinstance(value, str):
            out[key[:-2]] = compile_expression(value)(scope)
        else:
            out[key] = _constant(value, scope)
    return out


def _constant(value: Any, scope: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return evaluate_constructor(value, scope)
    if isinstance(value, list):
        return [_constant(v, scope) for v in value]
    return value
