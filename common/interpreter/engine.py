"""advance(): feed inbox events to an execution's state, run every pure state inline, return commands.

The state (see model.py for the contract) is a JSON-able dict:
  {"v": 2, "status", "seq": last EventId, "ctx": {name, flow, input}, "nf": next frame number,
   "frames": {frame id: frame}, "waits": {command id: [frame id, "a" | "t"]}, "tk": 1 once it ran an
   activity (its tasks and children hashes may exist; absent in states older than the field: may),
   + output/error/cause}
A frame is one running scope (the flow, a branch, an iteration, an old choice branch's steps):
  {"scope": scope key, "at": current state, "data": scope data, "last": its latest EventId,
   "parent": frame id | None, "slot": index in the parent, "kind": root|branch|iteration|choice,
   "wait": what the current state waits for, or None}
Events in one frame chain through ScheduleEventId = the frame's previous event; a child frame
starts from its parent's StepStarted, and the parent resumes from the child's last event.
Flow-level errors are data: they end the execution as Failed, never raise.
"""
from __future__ import annotations

from typing import Any

from common.fdl.model import FlowDef, StateDef
from common.interpreter import redrive, states
from common.interpreter.data import NewRules, OldRules, Sizes
from common.interpreter.model import (
    DEFAULT_LIMITS,
    TERMINAL,
    CommandType,
    Decision,
    Errors,
    EventType,
    HistoryEvent,
    Limits,
    Status,
    TokenFor,
    default_token_for,
)
from common.interpreter.outcomes import BLOCKED, DONE, END, Done, Failed, Fatal, Outcome, StateError

_new_event = tuple.__new__  # builds a HistoryEvent without the NamedTuple constructor's extra call (the hot path)
STATE_VERSION = 2
FLOW_TIMER = "flow/timeout"
_FLOW_FRAME = "*"  # the frame id a flow-level timer belongs to
_TERMINAL_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped", "ExecutionTimedOut"})
_TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL)
_RESULT_EVENTS = frozenset({EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED, EventType.TASK_REPORTED, EventType.TIMER_FIRED})


def advance(
    flow: FlowDef,
    state: dict[str, Any] | None,
    events: list[dict[str, Any]],
    now: int,
    *,
    limits: Limits = DEFAULT_LIMITS,
    token_for: TokenFor = default_token_for,
) -> Decision:
    """Apply events in order, run what is runnable, return the new state, history and commands."""
    run = Run(flow, state, now, limits, token_for)
    for event in events:
        run.apply(event)
    return run.decision()


def abort(state: dict[str, Any] | None, now: int, error: str, cause: str) -> Decision:
    """End the execution as Failed without running anything: what the engine does when advance() itself
    failed on it (a bug, a lost definition). The same end as any failure: the current state shape, an
    ExecutionFailed event, and a cancel for every timer and activity still awaited. An execution that
    has ended already is left as it is."""
    if state and state.get("status") in _TERMINAL_STATUSES:
        st = dict(state)
        return Decision(state=st, history=[], status=Status(st["status"]), output=st.get("output"), error=st.get("error"), cause=st.get("cause"))
    base = state or {}
    seq = int(base.get("seq") or 0)
    waits = base.get("waits") or {}
    commands = [
        {"t": (CommandType.CANCEL_TIMER if entry[1] == "t" else CommandType.CANCEL_ACTIVITY).value, "id": cid}
        for cid, entry in waits.items()
    ]
    event = _new_event(HistoryEvent, (seq + 1, seq, "ExecutionFailed", "", now, {"error": error, "cause": cause}))
    new_state = {
        "v": STATE_VERSION, "status": Status.FAILED.value, "seq": seq + 1, "ctx": base.get("ctx") or {},
        "nf": base.get("nf") or 1, "frames": {}, "waits": {}, "error": error, "cause": cause,
    }  # fmt: skip
    if "tk" in base or not base:
        new_state["tk"] = base.get("tk", 0)
    # A redrive resumes the frames that were running (redrive.py), as after any failure: not the flow from its start.
    try:
        resume = redrive.resumable(base.get("frames") or {})
    except (KeyError, TypeError, AttributeError, ValueError):
        resume = None  # frames too broken to resume (what abort() may be called for): a redrive starts afresh
    if resume:
        new_state["resume"] = resume
    return Decision(state=new_state, history=[event], commands=commands, status=Status.FAILED, error=error, cause=cause)


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """Copy what advance() mutates (bookkeeping); data objects are never mutated, so they are shared."""
    out = dict(state)
    out["waits"] = dict(state.get("waits") or {})
    frames = {}
    for fid, frame in (state.get("frames") or {}).items():
        f = dict(frame)
        wait = f.get("wait")
        if wait is not None:
            w = dict(wait)
            for key in ("kids", "r"):
                if key in w:
                    w[key] = dict(w[key])
            if "res" in w:
                w["res"] = list(w["res"])
            f["wait"] = w
        frames[fid] = f
    out["frames"] = frames
    return out


class Run:
    """One advance(): the state being changed, and what the decision will carry."""

    def __init__(self, flow: FlowDef, state: dict[str, Any] | None, now: int, limits: Limits, token_for: TokenFor) -> None:
        self.flow = flow
        self.now = now
        self.limits = limits
        self.max_events = limits.max_history_events
        self.token_for = token_for
        if state:
            self.state = _copy_state(state)
        else:
            self.state = {"v": STATE_VERSION, "status": Status.STARTING.value, "seq": 0, "ctx": {}, "nf": 1, "frames": {}, "waits": {}, "tk": 0}
        self.frames: dict[str, dict[str, Any]] = self.state["frames"]
        self.waits: dict[str, list[str]] = self.state["waits"]
        self.before = dict(self.waits)  # what earlier decisions asked for and is still awaited
        self.resolved: set[str] = set()  # ids whose result arrived in this decision
        self.history: list[HistoryEvent] = []
        self.commands: list[dict[str, Any]] = []
        self.rules = OldRules(self) if flow.syntax == "old" else NewRules(self)
        self.sizes = Sizes()
        # Frames that died in this decision (failed or cancelled), kept so that an end that is not a
        # success leaves a resumable snapshot for RedriveExecution (redrive.py).
        self.graveyard: dict[str, dict[str, Any]] = {}
        self.failing: dict[str, dict[str, Any]] = {}  # frame id -> its state's record when it failed uncaught

    # ------------------------------------------------------------ bookkeeping

    @property
    def ctx(self) -> dict[str, Any]:
        """{name, flow, input} of the execution."""
        ctx: dict[str, Any] = self.state["ctx"]
        return ctx

    @property
    def status(self) -> Status:
        return Status(self.state["status"])

    @property
    def ended(self) -> bool:
        return self.state["status"] in _TERMINAL_STATUSES

    def next_event_id(self) -> int:
        """The EventId the next emitted event will get."""
        return int(self.state["seq"]) + 1

    def _emit(self, type_: str, step: str, detail: dict[str, Any], sched: int) -> int:
        event_id: int = self.state["seq"] + 1
        if event_id >= self.max_events and type_ not in _TERMINAL_EVENTS:
            raise Fatal(Errors.HISTORY_LIMIT, f"the execution reached the limit of {self.limits.max_history_events} history events")
        self.state["seq"] = event_id
        self.history.append(_new_event(HistoryEvent, (event_id, sched, type_, step, self.now, detail)))
        return event_id

    def emit(self, frame: dict[str, Any], type_: str, step: str, detail: dict[str, Any]) -> int:
        """Append a history event caused by the frame's previous event; it becomes the frame's latest."""
        state = self.state
        event_id: int = state["seq"] + 1
        if event_id >= self.max_events:
            raise Fatal(Errors.HISTORY_LIMIT, f"the execution reached the limit of {self.limits.max_history_events} history events")
        state["seq"] = event_id
        self.history.append(_new_event(HistoryEvent, (event_id, frame["last"], type_, step, self.now, detail)))
        frame["last"] = event_id
        return event_id

    def start_timer(self, fid: str, cid: str, fire_at: int) -> None:
        """Ask for TimerFired {cid} at fire_at (ms) on behalf of a frame."""
        self.waits[cid] = [fid, "t"]
        self.commands.append({"t": CommandType.START_TIMER.value, "id": cid, "fire_at": int(fire_at)})

    def run_activity(self, fid: str, command: dict[str, Any]) -> None:
        """Ask for an activity on behalf of a frame; its results go to that frame."""
        self.waits[command["id"]] = [fid, "a"]
        self.commands.append(command)
        self.state["tk"] = 1

    def resolve(self, cid: str) -> None:
        """A result for cid arrived: it is no longer awaited, and needs no cancelling."""
        self.waits.pop(cid, None)
        self.resolved.add(cid)

    def abandon(self, cid: str | None) -> None:
        """cid is no longer awaited; if an earlier decision asked for it, this one cancels it."""
        if cid is not None:
            self.waits.pop(cid, None)

    def new_frame(self, parent: str | None, slot: int, scope: str, data: dict[str, Any], last: int, kind: str) -> str:
        """A frame for a scope, positioned at its first state."""
        fid = str(self.state["nf"])
        self.state["nf"] = int(self.state["nf"]) + 1
        start = self.flow.scopes[scope].start
        self.frames[fid] = {"scope": scope, "at": start, "data": data, "last": last, "parent": parent, "slot": slot, "kind": kind, "wait": None}
        return fid

    def state_of(self, frame: dict[str, Any]) -> StateDef:
        """The state a frame is at."""
        return self.flow.scopes[frame["scope"]].states[frame["at"]]

    def cancel_frame(self, fid: str) -> None:
        """Drop a frame and everything running under it; what they waited for is cancelled."""
        frame = self.frames.pop(fid, None)
        if frame is None:
            return
        self.graveyard[fid] = frame
        self._drop_waits(fid)
        wait = frame.get("wait") or {}
        for child in list((wait.get("kids") or {}).values()):
            self.cancel_frame(child)

    def _drop_waits(self, fid: str) -> None:
        if self.waits:
            for cid in [cid for cid, (owner, _) in self.waits.items() if owner == fid]:
                self.abandon(cid)

    # ------------------------------------------------------------ decision

    def decision(self) -> Decision:
        """The Decision: new commands still awaited, and cancels for what earlier decisions asked and is dropped."""
        commands = [c for c in self.commands if c["id"] in self.waits]
        for cid, (_, kind) in self.before.items():
            if cid not in self.waits and cid not in self.resolved:
                t = CommandType.CANCEL_TIMER if kind == "t" else CommandType.CANCEL_ACTIVITY
                commands.append({"t": t.value, "id": cid})
        st = self.state
        return Decision(
            state=st,
            history=self.history,
            commands=commands,
            status=self.status,
            output=st.get("output"),
            error=st.get("error"),
            cause=st.get("cause"),
        )

    # ------------------------------------------------------------ events

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one inbox event; anything that does not apply is dropped."""
        if not isinstance(event, dict):
            return
        kind = event.get("t")
        if self.ended:
            if kind == redrive.REDRIVEN:
                try:
                    redrive.reopen(self, event)
                except Fatal as fatal:
                    self.end("ExecutionFailed", Status.FAILED, fatal.error, fatal.cause, int(self.state["seq"]))
            return  # other late events after the end are dropped (deterministically)
        try:
            starting = self.state["status"] == Status.STARTING.value
            if kind == EventType.STARTED:
                if starting:
                    self.start(event)
            elif starting:
                if kind == EventType.STOP_REQUESTED:  # stopped before it started: Started will end it at once
                    self.state["stop"] = {"error": _text(event.get("error")), "cause": _text(event.get("cause"))}
                return
            elif kind == EventType.STOP_REQUESTED:
                self.end("ExecutionStopped", Status.STOPPED, _text(event.get("error")), _text(event.get("cause")), int(self.state["seq"]))
            elif kind in _RESULT_EVENTS:
                self.on_result(event)
        except Fatal as fatal:
            self.end("ExecutionFailed", Status.FAILED, fatal.error, fatal.cause, int(self.state["seq"]))

    def start(self, event: dict[str, Any]) -> None:
        """Started: ExecutionStarted, the flow's timeout timer, then the flow's first states."""
        exec_input = event.get("input")
        if exec_input is None:
            exec_input = {}
        self.state["ctx"] = {"name": _text(event.get("name")), "flow": _text(event.get("flow")), "input": exec_input}
        self.state["status"] = Status.RUNNING.value
        started = self._emit("ExecutionStarted", "", {"input": exec_input}, 0)
        stop = self.state.pop("stop", None)
        if stop is not None:
            self.end("ExecutionStopped", Status.STOPPED, stop["error"], stop["cause"], started)
            return
        if self.flow.timeout_seconds:
            self.start_timer(_FLOW_FRAME, FLOW_TIMER, self.now + self.flow.timeout_seconds * 1000)
        try:
            data = self.rules.flow_data(exec_input)
        except (StateError, ValueError, TypeError) as exc:
            self.end("ExecutionFailed", Status.FAILED, Errors.RUNTIME, f"flow inputMappings: {exc}", started)
            return
        fid = self.new_frame(None, 0, self.flow.root.key, data, started, "root")
        self.run_frame(fid)

    def on_result(self, event: dict[str, Any]) -> None:
        """An activity result, a report or a timer: to the frame that waits for that id, if any does."""
        cid = event.get("id")
        entry = self.waits.get(cid) if isinstance(cid, str) else None
        if entry is None:
            return  # not (or no longer) awaited
        fid, kind = entry
        if (event["t"] == EventType.TIMER_FIRED) != (kind == "t"):
            return  # a timer id reported as an activity result, or the reverse
        assert isinstance(cid, str)
        if fid == _FLOW_FRAME:
            self.resolve(cid)
            cause = f"the execution did not end within {self.flow.timeout_seconds} seconds"
            self.end("ExecutionTimedOut", Status.TIMED_OUT, Errors.TIMEOUT, cause, int(self.state["seq"]))
            return
        frame = self.frames[fid]
        state = self.state_of(frame)
        try:
            outcome = states.handler(state).resume(self, fid, frame, state, cid, event)
        except StateError as err:  # e.g. Map's ItemsPath no longer an array when it is retried
            outcome = self.state_failed(fid, frame, state, err.error, err.cause, None, retryable=False)
        if outcome is not None:
            self.run_frame(fid, outcome)

    # ------------------------------------------------------------ running

    def run_frame(self, fid: str, outcome: Outcome | None = None) -> None:
        """Run a frame's states inline until one waits, the scope ends, or it fails."""
        frame = self.frames[fid]
        scope = self.flow.scopes[frame["scope"]]
        while True:
            if outcome is None:
                if frame["at"] is None:
                    self.frame_done(fid)
                    return
                state = scope.states[frame["at"]]
                try:
                    outcome = states.handler(state).enter(self, fid, frame, state)
                except StateError as err:
                    outcome = self.state_failed(fid, frame, state, err.error, err.cause, None, retryable=False)
            if outcome is BLOCKED:
                return
            if isinstance(outcome, Failed):
                self.frame_failed(fid, outcome)
                return
            assert isinstance(outcome, Done)
            state = scope.states[frame["at"]]
            target = outcome.goto if outcome.goto is not None else (None if outcome.end else state.next)
            frame["wait"] = None
            if target is None:
                self.frame_done(fid)
                return
            frame["at"] = target
            outcome = None

    def finish_state(self, fid: str, frame: dict[str, Any], state: StateDef, effective: Any, raw: Any, entered: int,
                     rec: dict[str, Any] | None = None, goto: str | None = None) -> Outcome:  # fmt: skip
        """Complete a state with its raw result (emits StepSucceeded/StepExited); a failing OutputConstructor fails it."""
        try:
            self.rules.complete(frame, state, effective, raw, entered, rec)
        except StateError as err:
            return self.state_failed(fid, frame, state, err.error, err.cause, effective, retryable=False)
        if goto is None:
            return END if state.type == "succeed" else DONE
        return Done(goto=goto)

    def state_failed(self, fid: str, frame: dict[str, Any], state: StateDef, error: str, cause: str, effective: Any,
                     *, retryable: bool = True) -> Outcome:  # fmt: skip
        """A state failed: retry (first matching rule), else StepFailed and catch, else its scope fails."""
        rec = frame.get("wait") or {}
        if retryable and state.retry and "e" in rec:
            for index, policy in enumerate(state.retry):
                if not policy.matches(error):
                    continue
                used = int(rec.get("r", {}).get(str(index), 0))
                if used < policy.max_attempts:
                    retries = dict(rec.get("r", {}))
                    retries[str(index)] = used + 1
                    count = int(rec.get("rc", 0)) + 1
                    cid = f"{rec['e']}/retry/{count}"
                    frame["wait"] = {**rec, "r": retries, "rc": count, "bo": cid}
                    self.start_timer(fid, cid, self.now + policy.delay_ms(used + 1))
                    redrive.forget_under(self, fid)
                    return BLOCKED
                break  # only the first matching rule counts
        self.emit(frame, "StepFailed", state.name, {"error": error, "cause": cause})
        frame["wait"] = None
        self.failing[fid] = rec
        for rule in state.catch:
            if rule.matches(error):
                try:
                    self.rules.caught(frame, state, rule, effective, error, cause, rec)
                except StateError as err:
                    return Failed(err.error, err.cause)
                self.failing.pop(fid, None)
                redrive.forget_under(self, fid)
                return Done(goto=rule.goto)
        return Failed(error, cause)

    def frame_done(self, fid: str) -> None:
        """A scope ended well: the execution succeeds (root), or the parent state gets the child's result."""
        frame = self.frames.pop(fid)
        self._drop_waits(fid)
        parent_id = frame["parent"]
        if parent_id is None:
            try:
                output = self.rules.flow_output(frame["data"])
            except (StateError, ValueError, TypeError) as exc:
                self.graveyard[fid] = {**frame, "at": None, "wait": None}  # a redrive only computes the output again
                self.end("ExecutionFailed", Status.FAILED, Errors.RUNTIME, f"flow outputMappings: {exc}", int(frame["last"]))
                return
            self.end("ExecutionSucceeded", Status.SUCCEEDED, None, None, int(frame["last"]), output=output)
            return
        parent = self.frames[parent_id]
        parent_state = self.state_of(parent)
        result = self.rules.scope_result(frame["data"])
        kind = frame["kind"]
        if kind in ("branch", "iteration"):
            event = "BranchExited" if kind == "branch" else "IterationExited"
            self.emit(frame, event, parent_state.name, {"index": frame["slot"], self.rules.result_key(): result})
        parent["last"] = frame["last"]
        outcome = states.fanout.child_done(self, parent_id, parent, parent_state, int(frame["slot"]), result)
        if outcome is not None:
            self.run_frame(parent_id, outcome)

    def frame_failed(self, fid: str, failed: Failed) -> None:
        """A scope failed: the execution fails (root), or the parent state fails with the child's error."""
        frame = self.frames.pop(fid)
        self.graveyard[fid] = {**frame, "wait": self.failing.pop(fid, frame.get("wait"))}
        self._drop_waits(fid)
        parent_id = frame["parent"]
        if parent_id is None:
            self.end("ExecutionFailed", Status.FAILED, failed.error, failed.cause, int(frame["last"]))
            return
        parent = self.frames[parent_id]
        parent["last"] = frame["last"]
        outcome = states.fanout.child_failed(self, parent_id, parent, self.state_of(parent), int(frame["slot"]), failed)
        if outcome is not None:
            self.run_frame(parent_id, outcome)

    # ------------------------------------------------------------ endings

    def end(self, type_: str, status: Status, error: str | None, cause: str | None, sched: int, output: Any = None) -> None:
        """End the execution: its terminal event, status and result; everything still awaited is cancelled."""
        if status == Status.SUCCEEDED:
            self._emit(type_, "", {"output": output}, sched)
            self.state.update(status=status.value, output=output)
            self.state.pop("resume", None)
        else:
            self._emit(type_, "", {"error": error or "", "cause": cause or ""}, sched)
            self.state.update(status=status.value, error=error or "", cause=cause or "")
            resume = redrive.snapshot(self)
            if resume is not None:
                self.state["resume"] = resume
            else:
                self.state.pop("resume", None)
        self.frames.clear()
        self.waits.clear()


def _text(value: Any) -> str:
    return "" if value is None else str(value)
