"""Reading typed fields out of a definition document, each failure an FdlError that names where and what."""
from __future__ import annotations

from typing import Any

from common.fdl.errors import ExpressionError, FdlError
from common.fdl.expressions import Compiled, Dialect, check_constructor, compile_constructor, compile_expression
from common.fdl.mappings import compile_mappings, is_reference
from common.fdl.model import Mapping
from common.fdl.paths import PathError, parse_path


def no_unknown(raw: dict[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    """Refuse fields this object does not have."""
    for key in raw:
        if key not in allowed:
            raise FdlError(f"{where}: unknown field {key!r}")


def need_mapping(value: Any, where: str) -> dict[str, Any]:
    """The value as a mapping, or FdlError."""
    if not isinstance(value, dict):
        raise FdlError(f"{where} must be a mapping")
    return value


def name_of(value: Any, where: str) -> str:
    """A state name or reference: a non-empty string (YAML numbers such as `Name: 1` are read as text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise FdlError(f"{where} must be a non-empty string")
    return value


def opt_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    """An optional scalar field read as text."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise FdlError(f"{where}: {key} must be a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def opt_bool(raw: dict[str, Any], key: str, where: str) -> bool:
    """An optional true/false field (false when absent)."""
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise FdlError(f"{where}: {key} must be true or false")
    return value


def opt_number(
    raw: dict[str, Any], key: str, where: str, *, minimum: float = 0, maximum: float | None = None, integer: bool = False
) -> float | None:
    """An optional number (numeric strings such as Timeout: "30" accepted), within bounds."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise FdlError(f"{where}: {key} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FdlError(f"{where}: {key} must be a number")
    number: float = value  # an int stays an int
    if integer and not float(number).is_integer():
        raise FdlError(f"{where}: {key} must be a whole number")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {_n(minimum)} and {_n(maximum)}" if maximum is not None else f"at least {_n(minimum)}"
        raise FdlError(f"{where}: {key} must be {bound}, not {_n(number)}")
    return number


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def string_list(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A required non-empty list of strings (error names)."""
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise FdlError(f"{where}: {key} must be a non-empty list of error names")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise FdlError(f"{where}: {key}[{i}] must be an error name")
        out.append(item)
    return tuple(out)


def mappings(value: Any, where: str) -> tuple[Mapping, ...] | None:
    """Old-syntax `[{target, source}]`, checked (paths parse, targets are strings)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise FdlError(f"{where} must be a list of {{target, source}}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "target" not in item or "source" not in item:
            raise FdlError(f"{where}[{i}] must have `target` and `source`")
        no_unknown(item, {"target", "source"}, f"{where}[{i}]")
        if not isinstance(item["target"], str) or not item["target"]:
            raise FdlError(f"{where}[{i}].target must be a non-empty string")
        source = item["source"]
        if is_reference(source):
            try:
                parse_path(source)
            except PathError as exc:
                raise FdlError(f"{where}[{i}].source: {exc}") from None
        out.append(Mapping(target=item["target"], source=source))
    return tuple(out)


def compiled_mappings(value: tuple[Mapping, ...] | None) -> Any:
    """The compiled form of checked mappings (None stays None)."""
    return None if value is None else compile_mappings(value)


def constructor(value: Any, where: str) -> dict[str, Any] | None:
    """A new-syntax constructor (InputConstructor, OutputConstructor, Parameters), checked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FdlError(f"{where} must be a mapping")
    problems = check_constructor(value, where)
    if problems:
        raise FdlError(problems[0])
    return value


def compiled_constructor(value: dict[str, Any] | None) -> Any:
    """The compiled form of a checked constructor (None stays None)."""
    return None if value is None else compile_constructor(value)


def expression(text: Any, where: str, dialect: Dialect = "new", missing: str = "error") -> Compiled:
    """Compile an expression or condition, or FdlError naming where."""
    if not isinstance(text, str) or not text.strip():
        raise FdlError(f"{where} must be a non-empty expression string")
    try:
        return compile_expression(text, dialect, "null" if missing == "null" else "error")
    except ExpressionError as exc:
        raise FdlError(f"{where}: {exc}") from None
    except RecursionError:
        raise FdlError(f"{where}: the expression is nested too deeply") from None
