"""Task: one RunActivity per attempt, its timeout timer, callback modes, and the results coming back.

History of one attempt: TaskScheduled (the command is issued), then on the first result TaskStarted,
then TaskSucceeded / TaskFailed (RequestComplete), or TaskSubmitted / TaskSubmitFailed followed by
TaskSucceeded / TaskFailed from the report (callback modes), or TaskTimedOut when the timeout timer
fires first. A failed attempt goes to Retry (a back-off timer, then a new attempt with a new id)
and, once retries are exhausted, to StepFailed and Catch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.model import CALLBACK_MODES, StateDef, TaskSpec
from common.fdl.resources import arn_problem, target_of
from common.interpreter.model import CommandType, Errors, EventType
from common.interpreter.outcomes import BLOCKED, Outcome, StateError

if TYPE_CHECKING:
    from common.interpreter.engine import Run


def activity_id(entered: int, attempt: int) -> str:
    """The command id of an attempt: "<StepEntered id>", then "<StepEntered id>/<attempt>"."""
    return str(entered) if attempt == 1 else f"{entered}/{attempt}"


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    spec = _spec(state)
    first = activity_id(run.next_event_id(), 1)  # the StepEntered about to be emitted names attempt 1
    token = run.token_for(first) if spec.mode in CALLBACK_MODES else None
    entered, effective = run.rules.begin(frame, state, token)
    frame["wait"] = {"k": "task", "e": entered, "in": effective, "n": 0, "r": {}, "rc": 0}
    return _attempt(run, fid, frame, state)


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    rec = frame["wait"]
    spec = _spec(state)
    try:
        if cid == rec.get("bo"):  # the back-off is over: next attempt
            run.resolve(cid)
            rec["bo"] = None
            return _attempt(run, fid, frame, state)
        if cid == rec.get("tmo"):
            run.resolve(cid)
            run.abandon(rec.get("act"))
            cause = f"the task did not finish within {spec.timeout_seconds:g} seconds" if spec.timeout_seconds else "timed out"
            run.emit(frame, "TaskTimedOut", state.name, {"error": Errors.TASK_TIMEOUT, "cause": cause, "attempt": rec["n"]})
            return run.state_failed(fid, frame, state, Errors.TASK_TIMEOUT, cause, rec["in"])
        if cid != rec.get("act"):
            return None
        kind = event["t"]
        callback = spec.mode in CALLBACK_MODES
        if kind == EventType.ACTIVITY_COMPLETED:
            if not callback:
                return _succeeded(run, fid, frame, state, rec, run.rules.task_result(spec.kind, event.get("result")))
            if rec.get("sub"):
                return None  # a duplicate
            _started(run, frame, state, rec)
            rec["sub"] = True
            run.emit(frame, "TaskSubmitted", state.name, {"attempt": rec["n"]})
            return BLOCKED
        if kind == EventType.ACTIVITY_FAILED:
            if callback and rec.get("sub"):
                return None  # the submission already succeeded; only the report decides now
            error, cause = _text(event.get("error")) or Errors.RUNTIME, _text(event.get("cause"))
            return _failed(run, fid, frame, state, rec, "TaskSubmitFailed" if callback else "TaskFailed", error, cause)
        if kind == EventType.TASK_REPORTED and callback:
            if event.get("ok"):
                return _succeeded(run, fid, frame, state, rec, run.rules.report_result(event.get("output")))
            error, cause = _text(event.get("error")) or Errors.RUNTIME, _text(event.get("cause"))
            return _failed(run, fid, frame, state, rec, "TaskFailed", error, cause)
        return None
    except StateError as err:  # a result that is not usable data (FnF.InvalidLocal)
        return _failed(run, fid, frame, state, rec, "TaskFailed", err.error, err.cause)


def _attempt(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    rec = frame["wait"]
    spec = _spec(state)
    entered, attempt = int(rec["e"]), int(rec["n"]) + 1
    aid = activity_id(entered, attempt)
    token = run.token_for(aid) if spec.mode in CALLBACK_MODES else None
    call_input = run.rules.task_input(frame, state, rec["in"], token, attempt)
    try:
        params = run.rules.params(state, call_input, token, entered, attempt, int(rec.get("rc", 0)))
    except StateError as err:
        return run.state_failed(fid, frame, state, err.error, err.cause, rec["in"], retryable=False)
    resource = spec.resource
    if spec.action is not None and isinstance(params, dict) and isinstance(params.get("resourceArn"), str):
        resource = params["resourceArn"]
        problem = arn_problem(spec.kind, resource)
        if problem:
            return run.state_failed(fid, frame, state, Errors.RUNTIME, f"{state.name}: Parameters.resourceArn {problem}", rec["in"], retryable=False)
    rec.update(n=attempt, act=aid, sub=False, st=False, tmo=None, bo=None)
    detail: dict[str, Any] = {"resource": resource, "mode": spec.mode, "input": call_input, "attempt": attempt}
    if params is not None:
        detail["parameters"] = params
    run.emit(frame, "TaskScheduled", state.name, detail)
    timeout_ms = None if spec.timeout_seconds is None else int(round(spec.timeout_seconds * 1000))
    run.run_activity(fid, {
        "t": CommandType.RUN_ACTIVITY.value, "id": aid, "step": state.name, "attempt": attempt, "kind": spec.kind,
        "resource": resource, "action": spec.action, "target": target_of(spec.kind, resource), "input": call_input,
        "params": params, "mode": spec.mode, "timeout_ms": timeout_ms, "token": token,
    })  # fmt: skip
    if timeout_ms is not None:
        rec["tmo"] = f"{aid}/timeout"
        run.start_timer(fid, rec["tmo"], run.now + timeout_ms)
    return BLOCKED


def _started(run: Run, frame: dict[str, Any], state: StateDef, rec: dict[str, Any]) -> None:
    if not rec.get("st"):
        rec["st"] = True
        run.emit(frame, "TaskStarted", state.name, {"attempt": rec["n"]})


def _settle(run: Run, frame: dict[str, Any], state: StateDef, rec: dict[str, Any]) -> None:
    """The attempt is over: its activity and timeout are no longer awaited."""
    run.resolve(rec["act"])
    run.abandon(rec.get("tmo"))
    _started(run, frame, state, rec)


def _succeeded(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any], result: Any) -> Outcome:
    _settle(run, frame, state, rec)
    run.emit(frame, "TaskSucceeded", state.name, {"output": result})
    return run.finish_state(fid, frame, state, rec["in"], result, int(rec["e"]), rec)


def _failed(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any], event: str, error: str, cause: str) -> Outcome:
    _settle(run, frame, state, rec)
    run.emit(frame, event, state.name, {"error": error, "cause": cause})
    return run.state_failed(fid, frame, state, error, cause, rec["in"])


def _spec(state: StateDef) -> TaskSpec:
    assert state.task is not None
    return state.task


def _text(value: Any) -> str:
    return "" if value is None else str(value)
