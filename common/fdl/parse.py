"""Parse and validate a definition text (old `type: flow` or new `Type: StateMachine`) into a FlowDef.

Every rejection is an FdlError whose message names where (state name or document path) and what.
"""
from __future__ import annotations

from typing import Any

import yaml

from common.fdl.mappings import is_reference
from common.fdl.model import FlowDef, Mapping, ScopeDef, StateDef
from common.fdl.paths import PathError, parse_path

SUPPORTED_OLD = {"pass", "succeed", "fail"}
SUPPORTED_NEW = {"Pass", "Succeed", "Fail"}
KNOWN_OLD = {"task", "pass", "choice", "parallel", "foreach", "wait", "succeed", "fail"}
KNOWN_NEW = {"Task", "Pass", "Choice", "Parallel", "Map", "Wait", "Succeed", "Fail"}

OLD_COMMON = {"type", "name", "end", "inputMappings", "outputMappings", "description"}
OLD_FIELDS = {"pass": OLD_COMMON, "succeed": OLD_COMMON - {"end"}, "fail": (OLD_COMMON - {"end"}) | {"error", "cause"}}
NEW_COMMON = {"Type", "Name", "Description", "InputConstructor", "OutputConstructor", "Next", "End"}
NEW_FIELDS = {
    "Pass": NEW_COMMON,
    "Succeed": NEW_COMMON - {"Next", "End"},
    "Fail": (NEW_COMMON - {"Next"}) | {"Code", "Detail"},  # the docs' own example puts End on a Fail
}


class FdlError(ValueError):
    """A definition that cannot run; the message says where and what."""


def parse_definition(text: str) -> FlowDef:
    """Parse a definition in either syntax; raise FdlError with a precise message if it is invalid."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise FdlError(f"definition is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except (RecursionError, ValueError) as exc:  # absurd nesting, bad timestamps and the like
        raise FdlError(f"definition is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise FdlError("definition must be a YAML mapping with `type: flow` or `Type: StateMachine`")
    if "Type" in doc:
        return _parse_new(doc)
    if "type" in doc:
        return _parse_old(doc)
    raise FdlError("definition must have `type: flow` (Serverless Workflow) or `Type: StateMachine` (CloudFlow)")


# ---------------------------------------------------------------- old syntax


def _parse_old(doc: dict[str, Any]) -> FlowDef:
    if doc.get("type") != "flow":
        raise FdlError(f"type must be 'flow', not {doc.get('type')!r}")
    if doc.get("version") not in ("v1", "v1beta1"):
        raise FdlError(f"version must be 'v1' or 'v1beta1', not {doc.get('version')!r}")
    _no_unknown(doc, {"type", "version", "name", "steps", "inputMappings", "outputMappings", "timeoutSeconds", "description"}, "flow")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise FdlError("name must be a string")
    timeout = doc.get("timeoutSeconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        raise FdlError("timeoutSeconds must be a positive integer")
    return FlowDef(
        syntax="old",
        name=name,
        root=_old_scope(doc.get("steps"), "steps"),
        input_mappings=_mappings(doc.get("inputMappings"), "inputMappings"),
        output_mappings=_mappings(doc.get("outputMappings"), "outputMappings"),
        timeout_seconds=timeout,
    )


def _old_scope(steps: Any, path: str) -> ScopeDef:
    if steps is None:
        steps = []
    if not isinstance(steps, list):
        raise FdlError(f"{path} must be a list of steps")
    names: list[str] = []
    raws: list[tuple[dict[str, Any], str]] = []
    for i, raw in enumerate(steps):
        where = f"{path}[{i}]"
        if not isinstance(raw, dict):
            raise FdlError(f"{where} must be a mapping")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise FdlError(f"{where}: every step needs a non-empty string `name`")
        if name in names:
            raise FdlError(f"{where} ({name}): duplicate step name '{name}' in {path}")
        names.append(name)
        raws.append((raw, where))
    states: dict[str, StateDef] = {}
    for i, (raw, where) in enumerate(raws):
        name = raw["name"]
        kind = raw.get("type")
        if kind not in KNOWN_OLD:
            raise FdlError(f"{where} ({name}): unknown step type {kind!r}")
        if kind not in SUPPORTED_OLD:
            raise FdlError(f"{where} ({name}): step type '{kind}' is not supported yet")
        _no_unknown(raw, OLD_FIELDS[kind], f"{where} ({name})")
        end = raw.get("end", False)
        if not isinstance(end, bool):
            raise FdlError(f"{where} ({name}): end must be true or false")
        terminal = kind in ("succeed", "fail")
        nxt = None if (end or terminal or i + 1 == len(raws)) else names[i + 1]
        states[name] = StateDef(
            name=name,
            type=kind,
            path=where,
            next=nxt,
            input_mappings=_mappings(raw.get("inputMappings"), f"{where} ({name}).inputMappings"),
            output_mappings=_mappings(raw.get("outputMappings"), f"{where} ({name}).outputMappings"),
            error=_opt_str(raw, "error", where, name),
            cause=_opt_str(raw, "cause", where, name),
            raw=raw,
        )
    return ScopeDef(start=names[0] if names else None, states=states)


def _mappings(value: Any, where: str) -> tuple[Mapping, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise FdlError(f"{where} must be a list of {{target, source}}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "target" not in item or "source" not in item:
            raise FdlError(f"{where}[{i}] must have `target` and `source`")
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


# ---------------------------------------------------------------- new syntax


def _parse_new(doc: dict[str, Any]) -> FlowDef:
    if doc.get("Type") != "StateMachine":
        raise FdlError(f"Type must be 'StateMachine', not {doc.get('Type')!r}")
    if doc.get("SpecVersion", "v1") != "v1":
        raise FdlError(f"SpecVersion must be 'v1', not {doc.get('SpecVersion')!r}")
    _no_unknown(doc, {"Type", "SpecVersion", "Name", "Description", "StartAt", "States", "Timeout"}, "flow")
    name = doc.get("Name")
    if name is not None and not isinstance(name, str):
        raise FdlError("Name must be a string")
    return FlowDef(syntax="new", name=name, root=_new_scope(doc, ""))


def _new_scope(doc: dict[str, Any], prefix: str) -> ScopeDef:
    start = doc.get("StartAt")
    states_raw = doc.get("States")
    if not isinstance(states_raw, list) or not states_raw:
        raise FdlError(f"{prefix}States must be a non-empty list of states")
    if not isinstance(start, str) or not start:
        raise FdlError(f"{prefix}StartAt must name the first state")
    seen: dict[str, tuple[dict[str, Any], str]] = {}
    for i, raw in enumerate(states_raw):
        where = f"{prefix}States[{i}]"
        if not isinstance(raw, dict):
            raise FdlError(f"{where} must be a mapping")
        name = raw.get("Name")
        if not isinstance(name, str) or not name:
            raise FdlError(f"{where}: every state needs a non-empty string `Name`")
        if name in seen:
            raise FdlError(f"{where} ({name}): duplicate state name '{name}' in {prefix or 'the flow'}States")
        seen[name] = (raw, where)
    if start not in seen:
        raise FdlError(f"{prefix}StartAt: '{start}' names no state in {prefix or 'the flow'}States")
    states: dict[str, StateDef] = {}
    for name, (raw, where) in seen.items():
        kind = raw.get("Type")
        label = f"{where} ({name})"
        if kind not in KNOWN_NEW:
            raise FdlError(f"{label}: unknown state Type {kind!r}")
        if kind not in SUPPORTED_NEW:
            raise FdlError(f"{label}: state Type '{kind}' is not supported yet")
        _no_unknown(raw, NEW_FIELDS[kind], label)
        end, nxt = raw.get("End", False), raw.get("Next")
        if not isinstance(end, bool):
            raise FdlError(f"{label}: End must be true or false")
        if kind == "Pass":
            if end and nxt is not None:
                raise FdlError(f"{label}: Next and End cannot both be set")
            if not end and nxt is None:
                raise FdlError(f"{label}: needs Next or End: true")
        if nxt is not None and (not isinstance(nxt, str) or nxt not in seen):
            raise FdlError(f"{label}: Next '{nxt}' names no state in {prefix or 'the flow'}States")
        states[name] = StateDef(
            name=name,
            type=kind.lower(),
            path=where,
            next=nxt if kind == "Pass" else None,
            input_constructor=_constructor(raw.get("InputConstructor"), f"{label}.InputConstructor"),
            output_constructor=_constructor(raw.get("OutputConstructor"), f"{label}.OutputConstructor"),
            error=_opt_str(raw, "Code", where, name),
            cause=_opt_str(raw, "Detail", where, name),
            raw=raw,
        )
    _check_reachable(start, states, prefix)
    return ScopeDef(start=start, states=states)


def _check_reachable(start: str, states: dict[str, StateDef], prefix: str) -> None:
    reached, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        nxt = states[name].next
        if nxt is not None:
            todo.append(nxt)
    for name, state in states.items():
        if name not in reached:
            raise FdlError(f"{state.path} ({name}): state is unreachable from StartAt '{start}'")


def _constructor(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FdlError(f"{where} must be a mapping")
    _check_expressions(value, where)
    return value


def _check_expressions(value: Any, where: str) -> None:
    from common.fdl.expressions import ExpressionError, compile_expression

    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith(".$"):
                if not isinstance(item, str):
                    raise FdlError(f"{where}.{key} must be an expression string")
                try:
                    compile_expression(item)
                except ExpressionError as exc:
                    raise FdlError(f"{where}.{key}: {exc}") from None
            else:
                _check_expressions(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_expressions(item, f"{where}[{i}]")


# ---------------------------------------------------------------- shared


def _no_unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise FdlError(f"{where}: unknown field {key!r}")


def _opt_str(raw: dict[str, Any], key: str, where: str, name: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise FdlError(f"{where} ({name}): {key} must be a string")
    return str(value)
