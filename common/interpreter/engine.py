"""advance(): feed inbox events to an execution's state and run every pure state inline.

The state is a JSON-able dict so the driver can store it as is:
  {"v": 1, "status": ..., "seq": last EventId, "ctx": {name, flow, input}, "threads": [...]}
A thread is one running scope: {"scope": path, "at": state name, "data": {...}, "last": EventId}.
Flow-level errors are data: they end the execution as Failed, never raise.
"""
from __future__ import annotations

import copy
from typing import Any

from common.fdl.expressions import ExpressionError, evaluate_constructor
from common.fdl.mappings import apply_mappings, merged
from common.fdl.model import FlowDef, ScopeDef, StateDef
from common.interpreter.model import TERMINAL, Decision, EventType, HistoryEvent, Status

STATE_VERSION = 1
DEFAULT_FAIL_CODE = "FnF.Fail"  # a new-syntax Fail state without Code (docs/compatibility.md)
RUNTIME_ERROR = "FnF.RuntimeError"


class _StateFailed(Exception):
    """Internal: a state failed with an (error, cause) that ends its scope."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error)
        self.error, self.cause = error, cause


def advance(flow: FlowDef, state: dict[str, Any] | None, events: list[dict[str, Any]], now: int) -> Decision:
    """Apply events in order, run what is runnable, return the new state, history and commands."""
    run = _Run(flow, state, now)
    for event in events:
        run.apply(event)
    return run.decision()


class _Run:
    def __init__(self, flow: FlowDef, state: dict[str, Any] | None, now: int) -> None:
        self.flow = flow
        self.now = now
        self.state: dict[str, Any] = (
            copy.deepcopy(state)
            if state
            else {"v": STATE_VERSION, "status": Status.STARTING.value, "seq": 0, "ctx": {}, "threads": []}
        )
        self.history: list[HistoryEvent] = []
        self.commands: list[dict[str, Any]] = []
        self.output: Any = None
        self.error: str | None = None
        self.cause: str | None = None

    # ------------------------------------------------------------ bookkeeping

    @property
    def status(self) -> Status:
        return Status(self.state["status"])

    def emit(self, type_: str, step: str, detail: dict[str, Any], sched: int) -> int:
        self.state["seq"] += 1
        event_id = int(self.state["seq"])
        self.history.append(HistoryEvent(event_id, sched, type_, step, self.now, detail))
        return event_id

    def decision(self) -> Decision:
        st = self.state
        return Decision(
            state=st,
            history=self.history,
            commands=self.commands,
            status=self.status,
            output=st.get("output"),
            error=st.get("error"),
            cause=st.get("cause"),
        )

    # ------------------------------------------------------------ events

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if self.status in TERMINAL:
            return  # late events after the end are dropped (deterministically)
        if kind == EventType.STARTED:
            if self.status == Status.STARTING:
                self.start(event)
        elif kind == EventType.STOP_REQUESTED:
            if self.status != Status.STARTING:
                self.end_stopped(str(event.get("error") or ""), str(event.get("cause") or ""))

    def start(self, event: dict[str, Any]) -> None:
        exec_input = event.get("input") or {}
        self.state["ctx"] = {"name": event.get("name", ""), "flow": event.get("flow", ""), "input": exec_input}
        self.state["status"] = Status.RUNNING.value
        started = self.emit("ExecutionStarted", "", {"input": exec_input}, 0)
        try:
            if self.flow.syntax == "old":
                flow_input = (
                    apply_mappings(self.flow.input_mappings, {"input": exec_input, "local": {}, "context": {}})
                    if self.flow.input_mappings is not None
                    else exec_input
                )
                data: dict[str, Any] = {"input": flow_input, "local": {}}
            else:
                data = {"input": exec_input}
        except (ValueError, TypeError) as exc:
            self.end_failed(RUNTIME_ERROR, f"flow inputMappings: {exc}", started)
            return
        self.run_scope(self.flow.root, data, started)

    # ------------------------------------------------------------ running

    def run_scope(self, scope: ScopeDef, data: dict[str, Any], last: int) -> None:
        """Run a scope from its start through pure states until it ends (or, later, blocks)."""
        at = scope.start
        while at is not None:
            state = scope.states[at]
            try:
                last, data, ends_scope = self.run_state(state, data, last)
            except _StateFailed as failed:
                self.end_failed(failed.error, failed.cause, last)
                return
            at = None if ends_scope else state.next
        self.end_scope_ok(data, last)

    def run_state(self, state: StateDef, data: dict[str, Any], last: int) -> tuple[int, dict[str, Any], bool]:
        """Run one pure state; return (last EventId, the scope's data after it, whether it ends the scope)."""
        if self.flow.syntax == "old":
            return self.run_old_step(state, data, last)
        return self.run_new_state(state, data, last)

    def run_old_step(self, step: StateDef, data: dict[str, Any], last: int) -> tuple[int, dict[str, Any], bool]:
        ctx = self.old_context()
        try:
            step_input = (
                apply_mappings(step.input_mappings, {"input": data["input"], "local": data["local"], "context": ctx})
                if step.input_mappings is not None
                else merged(data["input"], data["local"])
            )
        except (ValueError, TypeError) as exc:
            raise _StateFailed(RUNTIME_ERROR, f"step {step.name} inputMappings: {exc}") from None
        last = self.emit("StepEntered", step.name, {"input": step_input, "local": {}}, last)
        last = self.emit("StepStarted", step.name, {"input": step_input}, last)
        if step.type == "fail":
            error, cause = step.error or "", step.cause or ""
            last = self.emit("StepFailed", step.name, {"error": error, "cause": cause}, last)
            raise _StateFailed(error, cause)
        local: dict[str, Any] = {}  # pass and succeed produce no data
        try:
            output = (
                apply_mappings(step.output_mappings, {"input": step_input, "local": local, "context": ctx})
                if step.output_mappings is not None
                else local
            )
        except (ValueError, TypeError) as exc:
            raise _StateFailed(RUNTIME_ERROR, f"step {step.name} outputMappings: {exc}") from None
        last = self.emit("StepSucceeded", step.name, {"output": output}, last)
        last = self.emit("StepExited", step.name, {"local": local}, last)
        data = {"input": data["input"], "local": merged(data["local"], output)}
        return last, data, step.type == "succeed"

    def run_new_state(self, state: StateDef, data: dict[str, Any], last: int) -> tuple[int, dict[str, Any], bool]:
        current = data["input"]
        last = self.emit("StepEntered", state.name, {"input": current}, last)
        context = self.new_context(state.name, current)
        try:
            effective = (
                evaluate_constructor(state.input_constructor, {"$Input": current, "$Context": context})
                if state.input_constructor is not None
                else current
            )
        except ExpressionError as exc:
            raise _StateFailed(RUNTIME_ERROR, f"state {state.name} InputConstructor: {exc}") from None
        last = self.emit("StepStarted", state.name, {"input": effective}, last)
        if state.type == "fail":
            error, cause = state.error or DEFAULT_FAIL_CODE, state.cause or ""
            last = self.emit("StepFailed", state.name, {"error": error, "cause": cause}, last)
            raise _StateFailed(error, cause)
        output = effective  # Pass and Succeed forward their input
        if state.output_constructor is not None:
            context["Current"]["Input"] = effective
            context["Current"]["Output"] = output
            try:
                output = evaluate_constructor(
                    state.output_constructor, {"$Input": effective, "$Output": output, "$Context": context}
                )
            except ExpressionError as exc:
                raise _StateFailed(RUNTIME_ERROR, f"state {state.name} OutputConstructor: {exc}") from None
        last = self.emit("StepSucceeded", state.name, {"output": output}, last)
        last = self.emit("StepExited", state.name, {"output": output}, last)
        return last, {"input": output}, state.type == "succeed"

    def old_context(self) -> dict[str, Any]:
        return {"execution": {"name": self.state["ctx"].get("name", "")}, "flow": {"name": self.state["ctx"].get("flow", "")}}

    def new_context(self, state_name: str, current: Any) -> dict[str, Any]:
        ctx = self.state["ctx"]
        return {
            "Execution": {"Name": ctx.get("name", ""), "Input": ctx.get("input", {})},
            "Current": {"Name": state_name, "Input": current},
        }

    # ------------------------------------------------------------ endings

    def end_scope_ok(self, data: dict[str, Any], last: int) -> None:
        if self.flow.syntax == "old":
            try:
                output = (
                    apply_mappings(self.flow.output_mappings, {"input": data["input"], "local": data["local"], "context": {}})
                    if self.flow.output_mappings is not None
                    else data["local"]
                )
            except (ValueError, TypeError) as exc:
                self.end_failed(RUNTIME_ERROR, f"flow outputMappings: {exc}", last)
                return
        else:
            output = data["input"]
        self.emit("ExecutionSucceeded", "", {"output": output}, last)
        self.state.update(status=Status.SUCCEEDED.value, output=output, threads=[])

    def end_failed(self, error: str, cause: str, last: int) -> None:
        self.emit("ExecutionFailed", "", {"error": error, "cause": cause}, last)
        self.state.update(status=Status.FAILED.value, error=error, cause=cause, threads=[])

    def end_stopped(self, error: str, cause: str) -> None:
        self.emit("ExecutionStopped", "", {"error": error, "cause": cause}, int(self.state["seq"]))
        self.state.update(status=Status.STOPPED.value, error=error, cause=cause, threads=[])
