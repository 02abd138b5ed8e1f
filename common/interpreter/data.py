"""The data rules of each syntax: what a state sees as input, what it passes on, what a scope returns.

Old syntax: a scope has `input` and `local`; a step's input is inputMappings over them (default:
input merged with local, local wins); its output is outputMappings over its input and own local
(default: its local; parallel/foreach: `{}`), merged into the scope's local.
New syntax: a scope carries one object, the current state's input; InputConstructor replaces it,
OutputConstructor reshapes the output; the output is the next state's input.

Data objects are never mutated in place: a new dict is made wherever one changes.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from common.fdl.errors import ExpressionError
from common.fdl.functions import Env
from common.fdl.mappings import compile_mappings, merged
from common.fdl.model import CatchRule, StateDef
from common.interpreter.model import Errors
from common.interpreter.outcomes import Fatal, StateError
from common.jsonlimits import HARD_MAX_DEPTH, JsonRefused, load_json, too_deep

if TYPE_CHECKING:
    from common.interpreter.engine import Run

Frame = dict[str, Any]
_ABSENT = object()


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON form; FnF.StateSizeExceeded for data nested deeper than HARD_MAX_DEPTH
    (a flow that wraps its data once per loop would otherwise nest it past what can be encoded)."""
    try:
        text = _ENCODE(value)
    except RecursionError:  # only past ~900 levels; the check below stops data long before
        raise Fatal(Errors.STATE_SIZE, f"the data nests deeper than {HARD_MAX_DEPTH} levels") from None
    if text.count("[") + text.count("{") > HARD_MAX_DEPTH and too_deep(value, HARD_MAX_DEPTH):  # each level needs a bracket
        raise Fatal(Errors.STATE_SIZE, f"the data nests deeper than {HARD_MAX_DEPTH} levels")
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class Sizes:
    """JSON sizes of data objects, exact or as an upper bound, remembered by identity for one advance().

    A merge of a and b is never bigger than a and b together, so sizes of merged locals and inputs
    are bounds carried forward; an exact size is computed only when a bound is over the limit.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[Any, int]] = {}

    def of(self, value: Any) -> int:
        """The (bound on the) size of value."""
        if not value and isinstance(value, (dict, list)):
            return 2  # {} or []
        hit = self._known.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        size = json_size(value)
        self._known[id(value)] = (value, size)
        return size

    def note(self, value: Any, bound: int) -> None:
        """Remember a bound for a value just made (it stays alive with the entry)."""
        self._known[id(value)] = (value, bound)


def parse_if_json(value: Any) -> Any:
    """A function's result as data: JSON text is parsed (FC functions often return strings)."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return load_json(value, HARD_MAX_DEPTH)
        except (ValueError, JsonRefused):  # not JSON this service takes: it stays text
            return value
    return value


class OldRules:
    """`type: flow`: $input, $local, $context and mappings."""

    syntax = "old"

    def __init__(self, run: Run) -> None:
        self.run = run
        self._base: dict[str, Any] | None = None

    def context(self, token: str | None = None) -> dict[str, Any]:
        if self._base is None:  # the same for every step of the execution
            ctx = self.run.ctx
            self._base = {"execution": {"name": ctx.get("name", "")}, "flow": {"name": ctx.get("flow", "")}}
        if token is not None:
            return {**self._base, "task": {"token": token}}
        return self._base

    def flow_data(self, exec_input: Any) -> dict[str, Any]:
        flow = self.run.flow
        if flow.map_input is None:
            return {"input": exec_input, "local": {}}
        return {"input": flow.map_input({"input": exec_input, "local": {}, "context": self.context()}), "local": {}}

    def flow_output(self, data: dict[str, Any]) -> Any:
        flow = self.run.flow
        if flow.map_output is None:
            return data["local"]
        return flow.map_output({"input": data["input"], "local": data["local"], "context": self.context()})

    def begin(self, frame: Frame, state: StateDef, token: str | None = None) -> tuple[int, Any]:
        """Emit StepEntered/StepStarted; return (StepEntered id, the step input)."""
        data = frame["data"]
        if state.map_input is not None:
            step_input = state.map_input({"input": data["input"], "local": data["local"], "context": self.context(token)})
        else:
            step_input = merged(data["input"], data["local"])
            if step_input is not data["input"] and step_input is not data["local"]:
                sizes = self.run.sizes
                sizes.note(step_input, sizes.of(data["input"]) + sizes.of(data["local"]))
        entered = self.run.emit(frame, "StepEntered", state.name, {"input": step_input, "local": {}})
        self.run.emit(frame, "StepStarted", state.name, {"input": step_input})
        return entered, step_input

    def task_input(self, frame: Frame, state: StateDef, step_input: Any, token: str | None, attempt: int) -> Any:
        """The event of one attempt: the step input, mapped again when its token changed."""
        if token is None or attempt == 1 or state.map_input is None:
            return step_input
        data = frame["data"]
        return state.map_input({"input": data["input"], "local": data["local"], "context": self.context(token)})

    def params(self, state: StateDef, call_input: Any, token: str | None, entered: int = 0, attempt: int = 1, retry_count: int = 0) -> Any:
        build = state.task.build_params if state.task else None
        if build is None:
            return None
        try:
            return build(Env({"$": call_input}))
        except ExpressionError as exc:
            raise StateError(Errors.RUNTIME, f"step {state.name} serviceParams: {exc}") from None

    def env(self, state: StateDef, step_input: Any, entered: int, phase: str) -> Env:
        """What conditions, collections and durations (`$.x`) are evaluated against."""
        return Env({"$": step_input})

    def complete(self, frame: Frame, state: StateDef, step_input: Any, local: Any, entered: int, rec: dict[str, Any] | None) -> None:
        if state.map_output is not None:
            output = state.map_output({"input": step_input, "local": local, "context": self.context()})
        elif state.type in ("parallel", "foreach"):
            output = {}
        else:
            output = local
        limit = self.run.limits.max_old_state_bytes
        sizes = self.run.sizes
        if sizes.of(step_input) + sizes.of(output) + sizes.of(local) > limit:  # a bound; the exact size only then
            if json_size((step_input, output, local)) - 4 > limit:  # one encoding; minus "[", "]" and two commas
                raise Fatal(Errors.STATE_SIZE, f"step {state.name}: input, output and local together exceed {limit} bytes")
        self.run.emit(frame, "StepSucceeded", state.name, {"output": output})
        self.run.emit(frame, "StepExited", state.name, {"local": local})
        data = frame["data"]
        new_local = merged(data["local"], output)
        if new_local is not data["local"] and new_local is not output:
            sizes.note(new_local, sizes.of(data["local"]) + sizes.of(output))
        frame["data"] = {"input": data["input"], "local": new_local}

    def caught(self, frame: Frame, state: StateDef, rule: CatchRule, step_input: Any, error: str, cause: str, rec: dict[str, Any]) -> None:
        """The data a catch passes on: errorMappings over the step input and {error, cause}."""
        data = frame["data"]
        mappings = state.task.error_mappings if state.task else None
        if mappings is None:
            return
        local = {"error": error, "cause": cause}
        context = self.context()
        output = compile_mappings(mappings)({"input": step_input if step_input is not None else data["input"], "local": local, "context": context})
        frame["data"] = {"input": data["input"], "local": merged(data["local"], output)}

    def task_result(self, kind: str, result: Any) -> Any:
        value = parse_if_json(result)
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise StateError(Errors.INVALID_LOCAL, f"the task result must be a JSON object, not {json.dumps(value)[:100]}")
        return value

    def report_result(self, output: Any) -> Any:
        return self.task_result("report", output)

    def child_data(self, step_input: Any, item: Any = _ABSENT, index: int = 0, state: StateDef | None = None) -> dict[str, Any]:
        if item is _ABSENT or state is None or state.fan is None:
            return {"input": step_input, "local": {}}
        extra = {state.fan.item_key or "item": item}
        if state.fan.index_key:
            extra[state.fan.index_key] = index
        return {"input": merged(step_input, extra), "local": {}}

    def scope_result(self, data: dict[str, Any]) -> Any:
        return data["local"]

    def child_input(self, data: dict[str, Any]) -> Any:
        return data["input"]

    def fan_result(self, state: StateDef, results: list[Any]) -> Any:
        return list(results)

    def result_key(self) -> str:
        return "local"

    def plain_output(self, step_input: Any) -> Any:
        """The raw result of Pass, Wait and Succeed: old steps produce nothing ($local is empty)."""
        return {}


class NewRules:
    """`Type: StateMachine`: $Input, $Output, $Context and constructors."""

    syntax = "new"

    def __init__(self, run: Run) -> None:
        self.run = run

    def context(
        self, state: StateDef, current_input: Any, *, output: Any = _ABSENT, error: tuple[str, str] | None = None,
        retry_count: int = 0, token: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        ctx = self.run.ctx
        current: dict[str, Any] = {"Name": state.name, "Input": current_input, "RetryCount": retry_count}
        if output is not _ABSENT:
            current["Output"] = output
        if error is not None:
            current["Error"] = {"Code": error[0], "Detail": error[1]}
        if token is not None:
            current["TaskToken"] = token
        execution = {"Name": ctx.get("name", ""), "Input": ctx.get("input", {}), "FlowName": ctx.get("flow", ""), "RoleArn": ""}
        return {"Execution": execution, "Current": current}

    def seed(self, entered: int, phase: str) -> tuple[Any, ...]:
        """What uuid() and randomInt() draw from: execution name, event id, and which evaluation."""
        return (self.run.ctx.get("name", ""), entered, phase)

    def roots(self, state: StateDef, current: Any, **context: Any) -> dict[str, Any]:
        """$Input, and $Context only when the state mentions it (building it costs)."""
        if state.uses_context:
            return {"$Input": current, "$Context": self.context(state, current, **context)}
        return {"$Input": current}

    def flow_data(self, exec_input: Any) -> dict[str, Any]:
        return {"input": exec_input}

    def flow_output(self, data: dict[str, Any]) -> Any:
        return data["input"]

    def _check(self, state: StateDef, what: str, value: Any) -> None:
        limit = self.run.limits.max_state_bytes
        if json_size(value) > limit:
            raise Fatal(Errors.STATE_SIZE, f"state {state.name}: its {what} exceeds {limit} bytes")

    def begin(self, frame: Frame, state: StateDef, token: str | None = None) -> tuple[int, Any]:
        """Emit StepEntered, apply InputConstructor, emit StepStarted; return (StepEntered id, effective input)."""
        raw = frame["data"]["input"]
        entered = self.run.emit(frame, "StepEntered", state.name, {"input": raw})
        effective = raw
        if state.build_input is not None:
            env = Env(self.roots(state, raw, token=token), self.seed(entered, "in"))
            try:
                effective = state.build_input(env)
            except ExpressionError as exc:
                raise StateError(Errors.RUNTIME, f"state {state.name} InputConstructor: {exc}") from None
            self._check(state, "input", effective)
        self.run.emit(frame, "StepStarted", state.name, {"input": effective})
        return entered, effective

    def task_input(self, frame: Frame, state: StateDef, effective: Any, token: str | None, attempt: int) -> Any:
        return effective

    def params(self, state: StateDef, call_input: Any, token: str | None, entered: int = 0, attempt: int = 1, retry_count: int = 0) -> Any:
        build = state.task.build_params if state.task else None
        if build is None:
            return None
        env = Env(self.roots(state, call_input, token=token, retry_count=retry_count), self.seed(entered, f"params/{attempt}"))
        try:
            return build(env)
        except ExpressionError as exc:
            raise StateError(Errors.RUNTIME, f"state {state.name} Parameters: {exc}") from None

    def env(self, state: StateDef, effective: Any, entered: int, phase: str) -> Env:
        """What Choice conditions, ItemsPath and Seconds.$ are evaluated against."""
        return Env(self.roots(state, effective), self.seed(entered, phase))

    def complete(self, frame: Frame, state: StateDef, effective: Any, raw_output: Any, entered: int, rec: dict[str, Any] | None) -> None:
        output = raw_output
        if state.build_output is not None:
            retry_count = rec.get("rc", 0) if rec else 0
            roots = self.roots(state, effective, output=raw_output, retry_count=retry_count)
            roots["$Output"] = raw_output
            env = Env(roots, self.seed(entered, "out"))
            try:
                output = state.build_output(env)
            except ExpressionError as exc:
                raise StateError(Errors.RUNTIME, f"state {state.name} OutputConstructor: {exc}") from None
        if output is not effective:
            self._check(state, "output", output)
        self.run.emit(frame, "StepSucceeded", state.name, {"output": output})
        self.run.emit(frame, "StepExited", state.name, {"output": output})
        frame["data"] = {"input": output}

    def caught(self, frame: Frame, state: StateDef, rule: CatchRule, effective: Any, error: str, cause: str, rec: dict[str, Any]) -> None:
        """The data a Catch passes on: its OutputConstructor, or the state's input unchanged."""
        current = effective if effective is not None else frame["data"]["input"]
        output = current
        if rule.output is not None:
            err = {"Code": error, "Detail": cause}
            context = self.context(state, current, output=err, error=(error, cause), retry_count=rec.get("rc", 0))
            env = Env({"$Input": current, "$Output": err, "$Context": context}, self.seed(rec.get("e", 0), "catch"))
            try:
                output = rule.output(env)
            except ExpressionError as exc:
                raise StateError(Errors.RUNTIME, f"state {state.name} Catch OutputConstructor: {exc}") from None
            self._check(state, "output", output)
        frame["data"] = {"input": output}

    def task_result(self, kind: str, result: Any) -> Any:
        value = parse_if_json(result)
        return {"Body": value} if kind == "fc" else value

    def report_result(self, output: Any) -> Any:
        return parse_if_json(output)

    def child_data(self, effective: Any, item: Any = _ABSENT, index: int = 0, state: StateDef | None = None) -> dict[str, Any]:
        return {"input": effective if item is _ABSENT else item}

    def scope_result(self, data: dict[str, Any]) -> Any:
        return data["input"]

    def child_input(self, data: dict[str, Any]) -> Any:
        return data["input"]

    def fan_result(self, state: StateDef, results: list[Any]) -> Any:
        if state.type == "parallel":
            return {f"Branch{i}": r for i, r in enumerate(results)}
        return {"Items": list(results)}

    def result_key(self) -> str:
        return "output"

    def plain_output(self, effective: Any) -> Any:
        """The raw result of Pass, Wait and Succeed: new states pass their input on."""
        return effective

