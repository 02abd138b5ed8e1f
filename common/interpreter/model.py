"""The contract between the pure interpreter and the engine that drives it.

    advance(flow, state, events, now, *, limits=Limits(), token_for=default_token_for) -> Decision

The interpreter never blocks and never does I/O. Everything that waits becomes a COMMAND in the
Decision; its outcome comes back later as an inbox EVENT in another advance() call, possibly in
another process, after a crash, duplicated, or out of order. `now` (epoch ms) is the only clock.

STATE. A JSON-able dict; `json.loads(json.dumps(state))` round-trips it exactly and advance()
behaves the same on either. None starts a new execution. The engine stores it as is and never
looks inside, except `state["status"]`.

EVENTS (dicts; "t" says which). Unknown kinds, and results for ids the interpreter no longer
waits for, are dropped deterministically, so duplicates and late arrivals are harmless.
    {"t": "Started", "input": {...}, "name": execution name, "flow": flow name}
    {"t": "StopRequested", "error": str, "cause": str}      -> ExecutionStopped (before Started: remembered,
                                                            and Started then ends it at once, no state run)
    {"t": "ActivityCompleted", "id": cmd id, "result": any}
    {"t": "ActivityFailed", "id": cmd id, "error": str, "cause": str}
    {"t": "TimerFired", "id": cmd id}
    {"t": "TaskReported", "id": cmd id, "ok": true, "output": any}           (ReportTaskSucceeded)
    {"t": "TaskReported", "id": cmd id, "ok": false, "error": str, "cause": str}   (ReportTaskFailed)
  ActivityCompleted.result is what the resource returned: for `kind: fc` the function's return value
  (a JSON string is parsed); the interpreter shapes it per syntax (old: `$local`, which must be an
  object, else FnF.InvalidLocal; new: `{"Body": value}`). Other kinds: the integration's result as
  the cloud reports it (HTTP: {StatusCode, Headers, Body}; FNF:StartExecution: {FlowName,
  ExecutionName, RequestID}), used as is. In the callback modes (`mode` WaitForCustomCallback /
  WaitForSystemCallback) ActivityCompleted only means "submitted" (TaskSubmitted) and the task waits
  for TaskReported; ActivityFailed there means the submission failed (TaskSubmitFailed). The engine
  reports the end of a WaitForSystemCallback activity (a child flow's end via its
  CallbackFnFTaskToken, an async function's end) as TaskReported, like a custom callback.
  TaskReported is accepted (even before ActivityCompleted) only for callback-mode activities.

COMMANDS (dicts with a deterministic "id", unique within the execution).
    {"t": "RunActivity", "id", "step", "attempt", "kind": fc|http|flow|mns|other, "resource", "action",
     "target", "input", "params", "mode", "timeout_ms", "token"}
        id: "<EventId of the StepEntered of the task>" for attempt 1, "<that>/<attempt>" after.
        resource: the ARN (old resourceArn, new Parameters.resourceArn) or, without one, the Action.
        action: the new-syntax Action, None in the old syntax.
        target: the ARN split for the engine ({region, account, service, function, qualifier} for fc,
            {region, account, flow} for flow; {} otherwise).
        input: the event object: old, the step input after inputMappings; new, the state input after
            InputConstructor (for FC:InvokeFunction call the function with params["body"] if given).
        params: evaluated Parameters (new) / serviceParams (old), None when absent.
        mode: RequestComplete | WaitForSystemCallback | WaitForCustomCallback (old requestResponse,
            sync, waitForCallback). timeout_ms: the task's timeout or None.
        token: token_for(id) in the callback modes (the same string `$context.task.token` /
            `$Context.Current.TaskToken` gave the mappings), else None.
    {"t": "StartTimer", "id", "fire_at": epoch ms}   answer with TimerFired {id} at or after fire_at.
        ids: "<entered>/wait" (Wait), "<activity id>/timeout" (task timeout), "<entered>/retry/<n>"
        (back-off before retry n), "flow/timeout" (old timeoutSeconds / new Timeout).
    {"t": "CancelTimer", "id"} / {"t": "CancelActivity", "id"}
        Advisory: a timer or activity issued by an EARLIER decision is no longer awaited (a result
        came first, a sibling failed, the execution ended). The engine may drop the timer, abandon
        the call, and mark the task token done (TaskAlreadyCompleted from then on). Ignoring them is
        safe: a late TimerFired or result for that id is dropped anyway.
  A RunActivity/StartTimer is only returned if it is still awaited at the end of the decision. The
  decision that ends the execution carries only Cancel* commands; later decisions carry none.

DECISION. The new state, the history events to append (EventId continues from the state), the
commands, and the status with output (Succeeded) or error and cause (Failed, Stopped, TimedOut).
Commands are not batch-invariant, but state and history are: feeding events one per advance()
or all in one gives the same state and history.

LIMITS come in as arguments. Exceeding one fails the execution (never caught by Catch):
    FnF.StateSizeExceeded   a state's input or output over max_state_bytes (new syntax), or a step's
                            input + output + local over max_old_state_bytes (old syntax)
    FnF.HistoryLimitExceeded  the history would pass max_history_events (the ExecutionFailed is the last)
    FnF.StateSizeExceeded   also: data nested deeper than common.jsonlimits.HARD_MAX_DEPTH (500) levels
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Status(StrEnum):
    """Execution statuses as the API reports them."""

    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    TIMED_OUT = "TimedOut"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.STOPPED, Status.TIMED_OUT})


class EventType(StrEnum):
    """Inbox event kinds (what happens to an execution)."""

    STARTED = "Started"
    STOP_REQUESTED = "StopRequested"
    ACTIVITY_COMPLETED = "ActivityCompleted"
    ACTIVITY_FAILED = "ActivityFailed"
    TIMER_FIRED = "TimerFired"
    TASK_REPORTED = "TaskReported"


class CommandType(StrEnum):
    """Command kinds (what the engine must do)."""

    RUN_ACTIVITY = "RunActivity"
    START_TIMER = "StartTimer"
    CANCEL_TIMER = "CancelTimer"
    CANCEL_ACTIVITY = "CancelActivity"


class Errors:
    """Error names the interpreter itself produces (docs/compatibility.md)."""

    ALL = "FnF.ALL"  # matches every error in retry/catch
    RUNTIME = "FnF.RuntimeError"  # a mapping, expression or data-shape error
    TASK_TIMEOUT = "FnF.TaskTimeout"  # a task's timeout timer fired before its result
    INVALID_LOCAL = "FnF.InvalidLocal"  # an old-syntax task result that is not a JSON object
    FAIL = "FnF.Fail"  # a new-syntax Fail state without Code
    TIMEOUT = "FnF.Timeout"  # the execution's own timeout (status TimedOut)
    STATE_SIZE = "FnF.StateSizeExceeded"
    HISTORY_LIMIT = "FnF.HistoryLimitExceeded"


@dataclass(frozen=True)
class Limits:
    """Per-execution limits, from the settings (the cloud's defaults)."""

    max_state_bytes: int = 64 * 1024  # new syntax: one state's input or output
    max_old_state_bytes: int = 32 * 1024  # old syntax: a step's input + output + local together
    max_history_events: int = 5000


DEFAULT_LIMITS = Limits()

TokenFor = Callable[[str], str]


def default_token_for(activity_id: str) -> str:
    """A stand-in task token (tests, tools). The engine passes one that is unforgeable and routes back."""
    return f"token-{activity_id}"


class HistoryEvent(NamedTuple):
    """One GetExecutionHistory event; `detail` is serialised to the EventDetail JSON string.

    A NamedTuple rather than a frozen dataclass: the interpreter makes one per event, and this is
    several times cheaper to build.
    """

    id: int
    sched: int
    type: str
    step: str
    time: int  # epoch ms
    detail: dict[str, Any]

    def to_json(self) -> list[Any]:
        """Compact stored form: [id, sched, type, step, time, detail]."""
        return [self.id, self.sched, self.type, self.step, self.time, self.detail]

    @classmethod
    def from_json(cls, raw: list[Any]) -> HistoryEvent:
        """Inverse of to_json."""
        return cls(int(raw[0]), int(raw[1]), str(raw[2]), str(raw[3]), int(raw[4]), dict(raw[5]))


@dataclass(frozen=True)
class Decision:
    """The result of one advance(): new state, new history, commands, and the end if reached."""

    state: dict[str, Any]
    history: list[HistoryEvent]
    commands: list[dict[str, Any]] = field(default_factory=list)
    status: Status = Status.RUNNING
    output: Any = None  # the execution output object, once Succeeded
    error: str | None = None
    cause: str | None = None

    @property
    def ended(self) -> bool:
        """Whether this decision ends the execution."""
        return self.status in TERMINAL
