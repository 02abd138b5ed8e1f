"""The new syntax (`Type: StateMachine`, `StartAt`, `States` list) into a FlowDef, with precise messages."""
from __future__ import annotations

import json
from typing import Any

from common.fdl import fields as f
from common.fdl.distributed import DISTRIBUTED_FIELDS, DistributedSpec, execution_mode, inline_only_fields, parse_distributed
from common.fdl.errors import FdlError
from common.fdl.model import (
    REQUEST_COMPLETE,
    WAIT_FOR_CUSTOM_CALLBACK,
    WAIT_FOR_SYSTEM_CALLBACK,
    CatchRule,
    ChoiceRule,
    FanSpec,
    FlowDef,
    RetryPolicy,
    ScopeDef,
    StateDef,
    TaskSpec,
    WaitSpec,
)
from common.fdl.resources import arn_problem, kind_of_action
from common.timefmt import parse_rfc3339

MAX_BRANCHES = 50  # Parallel branches [DOC parallel]
MAX_CONCURRENCY = 100  # Map MaxConcurrency [DOC inline-mode, older text]
MAX_SECONDS = 86400
TASK_MODES = frozenset({REQUEST_COMPLETE, WAIT_FOR_CUSTOM_CALLBACK, WAIT_FOR_SYSTEM_CALLBACK})

COMMON = frozenset({"Type", "Name", "Description", "InputConstructor", "OutputConstructor", "Next", "End"})
FIELDS = {
    "Pass": COMMON,
    "Task": COMMON | {"Action", "TaskMode", "Parameters", "Timeout", "Retry", "Catch"},
    "Choice": (COMMON - {"Next", "End"}) | {"Branches", "Default"},
    "Parallel": COMMON | {"Branches", "Retry", "Catch"},
    "Map": COMMON
    | {"ItemsPath", "Processor", "MaxConcuccency", "MaxConcurrency", "ProcessorConfig", "Retry", "Catch"}
    | DISTRIBUTED_FIELDS,
    "Wait": COMMON | {"Seconds", "Seconds.$", "UntilDateTime", "UntilDateTime.$"},
    "Succeed": COMMON - {"Next"},  # End is pointless on a Succeed, but harmless
    "Fail": (COMMON - {"Next"}) | {"Code", "Detail"},  # the docs' own example puts End on a Fail
}
NEEDS_NEXT_OR_END = frozenset({"Pass", "Task", "Parallel", "Map", "Wait"})
FLOW_FIELDS = {"Type", "SpecVersion", "Name", "Description", "StartAt", "States", "Timeout"}


def parse_new(doc: dict[str, Any]) -> FlowDef:
    """A `Type: StateMachine` document as a FlowDef."""
    if doc.get("Type") != "StateMachine":
        raise FdlError(f"Type must be 'StateMachine', not {doc.get('Type')!r}")
    if doc.get("SpecVersion", "v1") != "v1":
        raise FdlError(f"SpecVersion must be 'v1', not {doc.get('SpecVersion')!r}")
    f.no_unknown(doc, FLOW_FIELDS, "flow")
    name = doc.get("Name")
    if name is not None and not isinstance(name, str):
        raise FdlError("Name must be a string")
    timeout = f.opt_number(doc, "Timeout", "flow", minimum=1, maximum=366 * 86400, integer=True)
    parser = _NewParser()
    root = parser.scope(doc, "States", "")
    return FlowDef(
        syntax="new", name=name, root=root, timeout_seconds=None if timeout is None else int(timeout), scopes=parser.scopes
    )


class _NewParser:
    def __init__(self) -> None:
        self.scopes: dict[str, ScopeDef] = {}

    def scope(self, doc: dict[str, Any], key: str, prefix: str) -> ScopeDef:
        """A `{StartAt, States}` machine; `prefix` is where it stands (`` for the flow, `States[2].Processor.`)."""
        scope_name = f"{prefix}States" if prefix else "the flow's States"
        start = doc.get("StartAt")
        states_raw = doc.get("States")
        if not isinstance(states_raw, list) or not states_raw:
            raise FdlError(f"{prefix}States must be a non-empty list of states")
        if start is None:
            raise FdlError(f"{prefix}StartAt must name the first state")
        start = f.name_of(start, f"{prefix}StartAt")
        seen: dict[str, tuple[dict[str, Any], str]] = {}
        for i, raw in enumerate(states_raw):
            where = f"{key}[{i}]"
            if not isinstance(raw, dict):
                raise FdlError(f"{where} must be a mapping")
            if "Name" not in raw:
                raise FdlError(f"{where}: every state needs a non-empty string `Name`")
            name = f.name_of(raw["Name"], f"{where}.Name")
            if name in seen:
                raise FdlError(f"{where} ({name}): duplicate state name '{name}' in {scope_name}")
            seen[name] = (raw, where)
        if start not in seen:
            raise FdlError(f"{prefix}StartAt: '{start}' names no state in {scope_name}")
        names = list(seen)
        states = {name: self.state(raw, where, name, names, scope_name) for name, (raw, where) in seen.items()}
        _check_reachable(start, states)
        scope = ScopeDef(start=start, states=states, key=key)
        self.scopes[key] = scope
        return scope

    def state(self, raw: dict[str, Any], where: str, name: str, names: list[str], scope_name: str) -> StateDef:
        label = f"{where} ({name})"
        kind = raw.get("Type")
        if not isinstance(kind, str) or kind not in FIELDS:
            raise FdlError(f"{label}: unknown state Type {kind!r} (one of {', '.join(FIELDS)})")
        f.no_unknown(raw, FIELDS[kind], label)
        end = f.opt_bool(raw, "End", label)
        nxt = raw.get("Next")
        if kind in NEEDS_NEXT_OR_END:
            if end and nxt is not None:
                raise FdlError(f"{label}: Next and End cannot both be set")
            if not end and nxt is None:
                raise FdlError(f"{label}: needs Next or End: true")
        if nxt is not None:
            nxt = _target(nxt, f"{label}: Next", names, scope_name)
        input_constructor = f.constructor(raw.get("InputConstructor"), f"{label}.InputConstructor")
        output_constructor = f.constructor(raw.get("OutputConstructor"), f"{label}.OutputConstructor")
        extra: dict[str, Any] = {}
        if kind == "Task":
            extra = self.task(raw, label, names, scope_name)
        elif kind == "Choice":
            extra = self.choice(raw, label, names, scope_name)
        elif kind == "Parallel":
            extra = {"fan": self.parallel(raw, where, label), **self.errors(raw, label, names, scope_name)}
        elif kind == "Map" and execution_mode(raw, label) is not None:
            extra = {"dmap": self.dmap(raw, where, label), **self.errors(raw, label, names, scope_name)}
        elif kind == "Map":
            inline_only_fields(raw, label)
            extra = {"fan": self.map(raw, where, label), **self.errors(raw, label, names, scope_name)}
        elif kind == "Wait":
            extra = {"wait": self.wait(raw, label)}
        elif kind == "Fail":
            extra = {"error": f.opt_str(raw, "Code", label), "cause": f.opt_str(raw, "Detail", label)}
        return StateDef(
            name=name,
            type="dmap" if "dmap" in extra else kind.lower(),
            path=where,
            next=nxt if kind in NEEDS_NEXT_OR_END else None,
            uses_context=_mentions_context(raw),
            input_constructor=input_constructor,
            output_constructor=output_constructor,
            raw=raw,
            build_input=f.compiled_constructor(input_constructor),
            build_output=f.compiled_constructor(output_constructor),
            **extra,
        )

    # ------------------------------------------------------------ state types

    def task(self, raw: dict[str, Any], label: str, names: list[str], scope_name: str) -> dict[str, Any]:
        action = raw.get("Action")
        if not isinstance(action, str) or ":" not in action:
            raise FdlError(f"{label}: Action must name the integration as Service:Api, such as FC:InvokeFunction")
        kind = kind_of_action(action)
        mode = raw.get("TaskMode", REQUEST_COMPLETE)
        if not isinstance(mode, str) or mode not in TASK_MODES:
            raise FdlError(f"{label}: TaskMode must be one of {', '.join(sorted(TASK_MODES))}, not {mode!r}")
        params = f.constructor(raw.get("Parameters"), f"{label}.Parameters")
        if kind in ("fc", "flow"):
            arn = (params or {}).get("resourceArn")
            if arn is None and "resourceArn.$" not in (params or {}):
                raise FdlError(f"{label}: Parameters.resourceArn must name the {'function' if kind == 'fc' else 'flow'} {action} calls")
            if arn is not None:
                problem = arn_problem(kind, arn) if isinstance(arn, str) else "resourceArn must be a string"
                if problem:
                    raise FdlError(f"{label}: Parameters.resourceArn {problem}")
        spec = TaskSpec(
            kind=kind,
            resource=action,
            action=action,
            mode=mode,
            params=params,
            timeout_seconds=f.opt_number(raw, "Timeout", label, minimum=1, maximum=MAX_SECONDS),
            build_params=f.compiled_constructor(params),
        )
        return {"task": spec, **self.errors(raw, label, names, scope_name)}

    def errors(self, raw: dict[str, Any], label: str, names: list[str], scope_name: str) -> dict[str, Any]:
        """Retry and Catch of a Task, Parallel or Map."""
        retry, catch = raw.get("Retry"), raw.get("Catch")
        policies: list[RetryPolicy] = []
        if retry is not None:
            if not isinstance(retry, list):
                raise FdlError(f"{label}.Retry must be a list of rules")
            for i, item in enumerate(retry):
                at = f"{label}.Retry[{i}]"
                fields = {"Errors", "Description", "MaxAttempts", "IntervalSeconds", "BackoffRate", "MaxBackoffSeconds"}
                f.no_unknown(f.need_mapping(item, at), fields, at)
                for required in ("MaxAttempts", "IntervalSeconds"):
                    if item.get(required) is None:
                        raise FdlError(f"{at}: {required} is required")
                rate = f.opt_number(item, "BackoffRate", at, minimum=1, maximum=100)
                policies.append(
                    RetryPolicy(
                        errors=f.string_list(item, "Errors", at),
                        interval_seconds=float(f.opt_number(item, "IntervalSeconds", at, maximum=MAX_SECONDS) or 0),
                        max_attempts=int(f.opt_number(item, "MaxAttempts", at, maximum=1000, integer=True) or 0),
                        backoff_rate=1.0 if rate is None else float(rate),
                        max_interval_seconds=f.opt_number(item, "MaxBackoffSeconds", at, maximum=MAX_SECONDS),
                    )
                )
        rules: list[CatchRule] = []
        if catch is not None:
            if not isinstance(catch, list):
                raise FdlError(f"{label}.Catch must be a list of rules")
            for i, item in enumerate(catch):
                at = f"{label}.Catch[{i}]"
                f.no_unknown(f.need_mapping(item, at), {"Errors", "Description", "OutputConstructor", "Next"}, at)
                if item.get("Next") is None:
                    raise FdlError(f"{at}: Next must name the state to continue with")
                output = f.constructor(item.get("OutputConstructor"), f"{at}.OutputConstructor")
                rules.append(
                    CatchRule(
                        errors=f.string_list(item, "Errors", at),
                        goto=_target(item["Next"], f"{at}: Next", names, scope_name),
                        output_constructor=output,
                        output=f.compiled_constructor(output),
                    )
                )
        return {"retry": tuple(policies), "catch": tuple(rules)}

    def choice(self, raw: dict[str, Any], label: str, names: list[str], scope_name: str) -> dict[str, Any]:
        branches = raw.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise FdlError(f"{label}: Branches must be a non-empty list of {{Condition, Next}}")
        rules = []
        for i, item in enumerate(branches):
            at = f"{label}.Branches[{i}]"
            f.no_unknown(f.need_mapping(item, at), {"Condition", "Next", "Description"}, at)
            condition = item.get("Condition")
            if isinstance(condition, bool):
                condition = "true" if condition else "false"
            test = f.expression(condition, f"{at}.Condition", missing="null")
            if item.get("Next") is None:
                raise FdlError(f"{at}: Next must name the state to go to")
            rules.append(ChoiceRule(condition=condition, goto=_target(item["Next"], f"{at}: Next", names, scope_name), test=test))
        if raw.get("Default") is None:
            raise FdlError(f"{label}: a Choice needs Default, the state to go to when no condition holds")
        default = ChoiceRule(condition=None, goto=_target(raw["Default"], f"{label}: Default", names, scope_name))
        return {"choices": tuple(rules), "default": default}

    def parallel(self, raw: dict[str, Any], where: str, label: str) -> FanSpec:
        branches = raw.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise FdlError(f"{label}: Branches must be a non-empty list of {{StartAt, States}}")
        if len(branches) > MAX_BRANCHES:
            raise FdlError(f"{label}: a Parallel state has at most {MAX_BRANCHES} branches, not {len(branches)}")
        keys = []
        for i, branch in enumerate(branches):
            at = f"{where}.Branches[{i}]"
            f.no_unknown(f.need_mapping(branch, f"{label}.Branches[{i}]"), {"StartAt", "States", "Description"}, f"{label}.Branches[{i}]")
            self.scope(branch, f"{at}.States", f"{at}.")
            keys.append(f"{at}.States")
        return FanSpec(scopes=tuple(keys))

    def map(self, raw: dict[str, Any], where: str, label: str) -> FanSpec:
        _inline_only(raw.get("ProcessorConfig"), f"{label}.ProcessorConfig")
        items = raw.get("ItemsPath")
        if items is None:
            raise FdlError(f"{label}: ItemsPath must be an expression giving the array to map, such as $Input.items")
        items_fn = f.expression(items, f"{label}.ItemsPath")
        processor = f.need_mapping(raw.get("Processor"), f"{label}.Processor")
        at = f"{where}.Processor"
        f.no_unknown(processor, {"StartAt", "States", "ProcessorConfig"}, f"{label}.Processor")
        _inline_only(processor.get("ProcessorConfig"), f"{label}.Processor.ProcessorConfig")
        self.scope(processor, f"{at}.States", f"{at}.")
        if raw.get("MaxConcuccency") is not None and raw.get("MaxConcurrency") is not None:
            raise FdlError(f"{label}: give MaxConcurrency or MaxConcuccency (the documented spelling), not both")
        key = "MaxConcuccency" if raw.get("MaxConcuccency") is not None else "MaxConcurrency"
        limit = f.opt_number(raw, key, label, minimum=0, maximum=MAX_CONCURRENCY, integer=True)
        return FanSpec(scopes=(f"{at}.States",), items_expr=items, max_concurrency=int(limit or 0), items_fn=items_fn)

    def dmap(self, raw: dict[str, Any], where: str, label: str) -> DistributedSpec:
        """A Map in distributed mode: its Processor is checked here, and runs as child executions."""
        spec = parse_distributed(raw, label, execution_mode(raw, label) or "Standard")
        at = f"{where}.Processor"
        f.no_unknown(spec.processor, {"StartAt", "States", "ProcessorConfig"}, f"{label}.Processor")
        self.scope(spec.processor, f"{at}.States", f"{at}.")
        return spec

    def wait(self, raw: dict[str, Any], label: str) -> WaitSpec:
        given = [k for k in ("Seconds", "Seconds.$", "UntilDateTime", "UntilDateTime.$") if raw.get(k) is not None]
        if len(given) != 1:
            what = "neither" if not given else "both " + " and ".join(given)
            raise FdlError(f"{label}: a Wait needs exactly one of Seconds (or Seconds.$) and UntilDateTime, not {what}")
        key = given[0]
        value = raw[key]
        if key == "Seconds":
            if isinstance(value, str) and value.strip().startswith("$"):
                return WaitSpec(seconds_expr=value, seconds_fn=f.expression(value, f"{label}.Seconds"))
            return WaitSpec(seconds=f.opt_number(raw, "Seconds", label, minimum=0, maximum=366 * 86400))
        if key == "Seconds.$":
            return WaitSpec(seconds_expr=value, seconds_fn=f.expression(value, f"{label}.Seconds.$"))
        if key == "UntilDateTime.$" or (isinstance(value, str) and value.strip().startswith("$")):
            return WaitSpec(until_expr=value, until_fn=f.expression(value, f"{label}.{key}"))
        if not isinstance(value, str):
            raise FdlError(f"{label}: UntilDateTime must be an RFC 3339 time such as 2024-01-01T00:00:00Z, or an expression")
        try:
            return WaitSpec(until_ms=parse_rfc3339(value))
        except (ValueError, OverflowError):
            raise FdlError(f"{label}: UntilDateTime {value!r} is not an RFC 3339 time such as 2024-01-01T00:00:00Z") from None


def _mentions_context(raw: dict[str, Any]) -> bool:
    """Whether any text of the state itself (not its nested scopes) could refer to $Context."""
    own = {k: v for k, v in raw.items() if k not in ("Branches", "Processor") or raw.get("Type") == "Choice"}
    return "$context" in json.dumps(own, ensure_ascii=False).lower()


def _target(value: Any, where: str, names: list[str], scope_name: str) -> str:
    target = f.name_of(value, where)
    if target not in names:
        raise FdlError(f"{where} '{target}' names no state in {scope_name}")
    return target


def _inline_only(config: Any, where: str) -> None:
    if config is None:
        return
    f.no_unknown(f.need_mapping(config, where), {"Mode", "ExecutionMode"}, where)
    mode = config.get("Mode", "Inline")
    if mode != "Inline":
        raise FdlError(f"{where}: Mode {mode!r} is not supported; OpenFnF runs Map in Inline mode only")
    execution = config.get("ExecutionMode", "Standard")
    if execution not in ("Standard", "Express"):
        raise FdlError(f"{where}: ExecutionMode must be Standard or Express, not {execution!r}")


def _check_reachable(start: str, states: dict[str, StateDef]) -> None:
    reached, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        state = states[name]
        targets = [state.next, *(c.goto for c in state.choices), *(c.goto for c in state.catch)]
        if state.default is not None:
            targets.append(state.default.goto)
        todo.extend(t for t in targets if t is not None)
    for name, state in states.items():
        if name not in reached:
            raise FdlError(f"{state.path} ({name}): state is unreachable from StartAt '{start}'")
