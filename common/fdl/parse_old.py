"""The old syntax (`type: flow`, `version: v1|v1beta1`, `steps`) into a FlowDef, with precise messages."""
from __future__ import annotations

from typing import Any

from common.fdl import fields as f
from common.fdl.errors import ExpressionError, FdlError
from common.fdl.expressions import Compiled, compile_expression
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
from common.fdl.resources import arn_problem, kind_of_arn
from common.timefmt import parse_rfc3339

MAX_BRANCHES = 100  # parallel branches [DOC 122498]
MAX_WAIT_SECONDS = 2 * 86400  # "The maximum wait time is limited to two days."
MAX_SECONDS = 86400  # retry intervals, task timeouts

PATTERNS = {"requestResponse": REQUEST_COMPLETE, "sync": WAIT_FOR_SYSTEM_CALLBACK, "waitForCallback": WAIT_FOR_CUSTOM_CALLBACK}

COMMON = frozenset({"type", "name", "end", "inputMappings", "outputMappings", "description"})
FIELDS = {
    "task": COMMON | {"resourceArn", "pattern", "timeoutSeconds", "serviceParams", "retry", "catch", "errorMappings"},
    "pass": COMMON,
    "wait": COMMON | {"duration", "timestamp"},
    "choice": COMMON | {"choices", "default"},
    "parallel": COMMON | {"branches"},
    "foreach": COMMON | {"iterationMapping", "steps"},
    "succeed": COMMON - {"end"},
    "fail": (COMMON - {"end"}) | {"error", "cause"},
}
FLOW_FIELDS = {"type", "version", "name", "steps", "inputMappings", "outputMappings", "timeoutSeconds", "description"}


def parse_old(doc: dict[str, Any]) -> FlowDef:
    """A `type: flow` document as a FlowDef."""
    if doc.get("type") != "flow":
        raise FdlError(f"type must be 'flow', not {doc.get('type')!r}")
    if doc.get("version") not in ("v1", "v1beta1"):
        raise FdlError(f"version must be 'v1' or 'v1beta1', not {doc.get('version')!r}")
    f.no_unknown(doc, FLOW_FIELDS, "flow")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise FdlError("name must be a string")
    timeout = doc.get("timeoutSeconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        raise FdlError("timeoutSeconds must be a positive integer")
    parser = _OldParser()
    root = parser.scope(doc.get("steps"), "steps")
    input_mappings = f.mappings(doc.get("inputMappings"), "inputMappings")
    output_mappings = f.mappings(doc.get("outputMappings"), "outputMappings")
    return FlowDef(
        syntax="old",
        name=name,
        root=root,
        input_mappings=input_mappings,
        output_mappings=output_mappings,
        timeout_seconds=timeout,
        scopes=parser.scopes,
        map_input=f.compiled_mappings(input_mappings),
        map_output=f.compiled_mappings(output_mappings),
    )


class _OldParser:
    def __init__(self) -> None:
        self.scopes: dict[str, ScopeDef] = {}

    def scope(self, steps: Any, key: str) -> ScopeDef:
        if steps is None:
            steps = []
        if not isinstance(steps, list):
            raise FdlError(f"{key} must be a list of steps")
        names: list[str] = []
        for i, raw in enumerate(steps):
            where = f"{key}[{i}]"
            if not isinstance(raw, dict):
                raise FdlError(f"{where} must be a mapping")
            if "name" not in raw:
                raise FdlError(f"{where}: every step needs a non-empty string `name`")
            name = f.name_of(raw["name"], f"{where}.name")
            if name in names:
                raise FdlError(f"{where} ({name}): duplicate step name '{name}' in {key}")
            names.append(name)
        states: dict[str, StateDef] = {}
        for i, raw in enumerate(steps):
            state = self.step(raw, f"{key}[{i}]", names, i)
            states[state.name] = state
        scope = ScopeDef(start=names[0] if names else None, states=states, key=key)
        self.scopes[key] = scope
        return scope

    def step(self, raw: dict[str, Any], where: str, names: list[str], i: int) -> StateDef:
        name = names[i]
        label = f"{where} ({name})"
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in FIELDS:
            raise FdlError(f"{label}: unknown step type {kind!r}")
        f.no_unknown(raw, FIELDS[kind], label)
        end = f.opt_bool(raw, "end", label)
        terminal = kind in ("succeed", "fail")
        nxt = None if (end or terminal or i + 1 == len(names)) else names[i + 1]
        input_mappings = f.mappings(raw.get("inputMappings"), f"{label}.inputMappings")
        output_mappings = f.mappings(raw.get("outputMappings"), f"{label}.outputMappings")
        extra: dict[str, Any] = {}
        if kind == "task":
            extra = self.task(raw, label, names)
        elif kind == "wait":
            extra = {"wait": self.wait(raw, label)}
        elif kind == "choice":
            extra = self.choice(raw, where, label, names)
        elif kind == "parallel":
            extra = {"fan": self.parallel(raw, where, label)}
        elif kind == "foreach":
            extra = {"fan": self.foreach(raw, where, label)}
        elif kind == "fail":
            extra = {"error": f.opt_str(raw, "error", label), "cause": f.opt_str(raw, "cause", label)}
        return StateDef(
            name=name,
            type=kind,
            path=where,
            next=nxt,
            input_mappings=input_mappings,
            output_mappings=output_mappings,
            raw=raw,
            map_input=f.compiled_mappings(input_mappings),
            map_output=f.compiled_mappings(output_mappings),
            **extra,
        )

    # ------------------------------------------------------------ step types

    def task(self, raw: dict[str, Any], label: str, names: list[str]) -> dict[str, Any]:
        arn = raw.get("resourceArn")
        if not isinstance(arn, str) or not arn.strip():
            raise FdlError(f"{label}: resourceArn must name what the task calls")
        kind = kind_of_arn(arn.strip())
        problem = arn_problem(kind, arn.strip())
        if problem:
            raise FdlError(f"{label}: resourceArn {problem}")
        pattern = raw.get("pattern", "requestResponse")
        if not isinstance(pattern, str) or pattern not in PATTERNS:
            raise FdlError(f"{label}: pattern must be requestResponse, sync or waitForCallback, not {pattern!r}")
        params = raw.get("serviceParams")
        if params is not None:
            f.need_mapping(params, f"{label}.serviceParams")
        spec = TaskSpec(
            kind=kind,
            resource=arn.strip(),
            action=None,
            mode=PATTERNS[pattern],
            params=params,
            timeout_seconds=f.opt_number(raw, "timeoutSeconds", label, minimum=1, maximum=MAX_SECONDS),
            error_mappings=f.mappings(raw.get("errorMappings"), f"{label}.errorMappings"),
            build_params=None if params is None else _service_params(params, f"{label}.serviceParams"),
        )
        return {"task": spec, "retry": self.retry(raw.get("retry"), label), "catch": self.catch(raw.get("catch"), label, names)}

    def retry(self, value: Any, label: str) -> tuple[RetryPolicy, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise FdlError(f"{label}.retry must be a list of policies")
        out = []
        for i, item in enumerate(value):
            where = f"{label}.retry[{i}]"
            f.no_unknown(f.need_mapping(item, where), {"errors", "intervalSeconds", "maxIntervalSeconds", "maxAttempts", "multiplier"}, where)
            interval = f.opt_number(item, "intervalSeconds", where, minimum=0, maximum=MAX_SECONDS)
            out.append(
                RetryPolicy(
                    errors=f.string_list(item, "errors", where),
                    interval_seconds=1.0 if interval is None else float(interval),
                    max_attempts=int(_default(f.opt_number(item, "maxAttempts", where, minimum=0, maximum=1000, integer=True), 3)),
                    backoff_rate=float(_default(f.opt_number(item, "multiplier", where, minimum=1, maximum=100), 2)),
                    max_interval_seconds=f.opt_number(item, "maxIntervalSeconds", where, minimum=0, maximum=MAX_SECONDS),
                )
            )
        return tuple(out)

    def catch(self, value: Any, label: str, names: list[str]) -> tuple[CatchRule, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise FdlError(f"{label}.catch must be a list of {{errors, goto}}")
        out = []
        for i, item in enumerate(value):
            where = f"{label}.catch[{i}]"
            f.no_unknown(f.need_mapping(item, where), {"errors", "goto"}, where)
            out.append(CatchRule(errors=f.string_list(item, "errors", where), goto=_goto(item, where, names, required=True) or ""))
        return tuple(out)

    def wait(self, raw: dict[str, Any], label: str) -> WaitSpec:
        has_duration, has_timestamp = raw.get("duration") is not None, raw.get("timestamp") is not None
        if has_duration == has_timestamp:
            raise FdlError(f"{label}: a wait step needs exactly one of duration or timestamp")
        if has_duration:
            value = raw["duration"]
            if isinstance(value, str) and value.strip().startswith("$"):
                return WaitSpec(seconds_expr=value, seconds_fn=_old_path(value, f"{label}.duration"))
            seconds = f.opt_number(raw, "duration", label, minimum=0, maximum=MAX_WAIT_SECONDS)
            return WaitSpec(seconds=seconds)
        value = raw["timestamp"]
        if not isinstance(value, str):
            raise FdlError(f"{label}: timestamp must be an RFC 3339 time such as 2019-05-02T15:04:05Z, or a path such as $.when")
        if value.strip().startswith("$"):
            return WaitSpec(until_expr=value, until_fn=_old_path(value, f"{label}.timestamp"))
        try:
            return WaitSpec(until_ms=parse_rfc3339(value))
        except (ValueError, OverflowError):
            raise FdlError(f"{label}: timestamp {value!r} is not an RFC 3339 time such as 2019-05-02T15:04:05Z") from None

    def choice(self, raw: dict[str, Any], where: str, label: str, names: list[str]) -> dict[str, Any]:
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise FdlError(f"{label}: choices must be a non-empty list of {{condition, steps, goto}}")
        rules = []
        for i, item in enumerate(choices):
            at = f"{label}.choices[{i}]"
            f.no_unknown(f.need_mapping(item, at), {"condition", "steps", "goto", "description"}, at)
            condition = item.get("condition")
            if isinstance(condition, bool):
                condition = "true" if condition else "false"
            test = f.expression(condition, f"{at}.condition", dialect="old", missing="null")
            rules.append(self.branch(item, at, f"{where}.choices[{i}].steps", names, condition, test))
        default = raw.get("default")
        rule = None
        if default is not None:
            at = f"{label}.default"
            f.no_unknown(f.need_mapping(default, at), {"steps", "goto", "description"}, at)
            rule = self.branch(default, at, f"{where}.default.steps", names, None, None)
        return {"choices": tuple(rules), "default": rule}

    def branch(
        self, item: dict[str, Any], at: str, key: str, names: list[str], condition: str | None, test: Compiled | None
    ) -> ChoiceRule:
        scope = None
        if item.get("steps") is not None:
            self.scope(item["steps"], key)
            scope = key
        return ChoiceRule(condition=condition, goto=_goto(item, at, names, required=False), scope=scope, test=test)

    def parallel(self, raw: dict[str, Any], where: str, label: str) -> FanSpec:
        branches = raw.get("branches")
        if not isinstance(branches, list) or not branches:
            raise FdlError(f"{label}: branches must be a non-empty list of {{steps}}")
        if len(branches) > MAX_BRANCHES:
            raise FdlError(f"{label}: a parallel step has at most {MAX_BRANCHES} branches, not {len(branches)}")
        keys = []
        for i, branch in enumerate(branches):
            at = f"{label}.branches[{i}]"
            f.no_unknown(f.need_mapping(branch, at), {"steps", "description"}, at)
            key = f"{where}.branches[{i}].steps"
            self.scope(branch.get("steps"), key)
            keys.append(key)
        return FanSpec(scopes=tuple(keys))

    def foreach(self, raw: dict[str, Any], where: str, label: str) -> FanSpec:
        at = f"{label}.iterationMapping"
        mapping = f.need_mapping(raw.get("iterationMapping"), at)
        f.no_unknown(mapping, {"collection", "item", "index"}, at)
        collection = mapping.get("collection")
        if not isinstance(collection, str) or not collection.strip().startswith("$"):
            raise FdlError(f"{at}.collection must be a path into the step input such as $.names")
        item = mapping.get("item")
        if not isinstance(item, str) or not item:
            raise FdlError(f"{at}.item must name the key each element is put under")
        index = mapping.get("index")
        if index is not None and (not isinstance(index, str) or not index):
            raise FdlError(f"{at}.index must name the key the position is put under")
        key = f"{where}.steps"
        self.scope(raw.get("steps"), key)
        return FanSpec(
            scopes=(key,),
            items_expr=collection,
            item_key=item,
            index_key=index,
            max_concurrency=MAX_BRANCHES,
            items_fn=_old_path(collection, f"{at}.collection"),
        )


def _default(value: float | None, default: float) -> float:
    return default if value is None else value


def _goto(item: dict[str, Any], where: str, names: list[str], *, required: bool) -> str | None:
    target = item.get("goto")
    if target is None:
        if required:
            raise FdlError(f"{where}: goto must name the step to continue with")
        return None
    name = f.name_of(target, f"{where}.goto")
    if name not in names:
        raise FdlError(f"{where}: goto '{name}' names no sibling step (one of: {', '.join(names)})")
    return name


def _old_path(text: str, where: str) -> Compiled:
    """A `$.x` path into the step's own input (absent data reads as null)."""
    try:
        return compile_expression(text.strip(), "old", "null")
    except (ExpressionError, RecursionError) as exc:
        raise FdlError(f"{where}: {exc}") from None


def _service_params(params: Any, where: str) -> Compiled:
    """serviceParams: `$`-strings are paths into the step input; everything else is a constant."""
    if isinstance(params, dict):
        parts = [(k, _service_params(v, f"{where}.{k}")) for k, v in params.items()]
        return lambda env: {k: fn(env) for k, fn in parts}
    if isinstance(params, list):
        items = [_service_params(v, f"{where}[{i}]") for i, v in enumerate(params)]
        return lambda env: [fn(env) for fn in items]
    if isinstance(params, str) and params.strip().startswith("$"):
        return _old_path(params, where)
    return lambda env: params
