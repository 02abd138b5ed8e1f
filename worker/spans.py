"""The worker's spans (common/tracing.py): each drive, each activity, each timer firing, a child's start.

Each is a decorator or a `with` at an edge of the worker, and returns at once while tracing is off
(`tracing.tracer is None`). The spans continue the trace stored with the execution (its record's
`tp`, an activity command's `tp`), so one execution is one trace whichever processes worked on it.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from common import keys, tracing
from common.driverscripts import Acquired
from common.records import as_str

T = TypeVar("T")

DRIVE = "openfnf.drive"
ACTIVITY = "openfnf.activity"
TIMER = "openfnf.timer"
CHILD_START = "openfnf.child.start"
SCHEDULE_START = "openfnf.schedule.start"
REPORT = "openfnf.report"


def traced_decide(decide: Callable[..., T]) -> Callable[..., T]:
    """Driver._decide(tag, acquired) in an `openfnf.drive` span under the execution's trace.

    The span links the Celery task that carried the drive message (a message carries several
    executions, each in its own trace).
    """

    @functools.wraps(decide)
    def wrapper(self: Any, tag: str, got: Acquired) -> T:
        if tracing.tracer is None:
            return decide(self, tag, got)
        attributes = {
            tracing.FLOW: got.flow, tracing.EXECUTION: got.name, "openfnf.status": got.status or "Running",
            "openfnf.drive.events": len(got.inbox),
        }  # fmt: skip
        with tracing.span(DRIVE, attributes, parent=got.traceparent, link_current=True) as span:
            done = decide(self, tag, got)
            history = getattr(done, "history", None) or []
            steps = list(dict.fromkeys(e.step for e in history if e.step))
            ended = [e.type for e in history if e.type.startswith("Execution") and e.type not in ("ExecutionStarted", "ExecutionRedriven")]
            tracing.annotate(span, {tracing.STATE: ",".join(steps), "openfnf.drive.history": len(history), "openfnf.ended": ",".join(ended)})
            return done

    return wrapper


def traced_activity(execute: Callable[..., T]) -> Callable[..., T]:
    """ActivityRunner.execute(tag, command) in an `openfnf.activity` span under the drive that asked for it.

    A task that then waits for a callback keeps this span's traceparent beside its token's state
    (tasks hash, `tp:<task id>`): the report, however much later, links back to it.
    """

    @functools.wraps(execute)
    def wrapper(self: Any, tag: str, command: dict[str, Any]) -> T:
        if tracing.tracer is None:
            return execute(self, tag, command)
        from worker.activities import mode_of, waits_for_report

        flow_id, name = keys.split_tag(tag)
        attributes = {
            tracing.EXECUTION: name, "openfnf.flow.id": flow_id, tracing.STATE: str(command.get("step") or ""),
            tracing.ATTEMPT: int(command.get("attempt") or 1), "openfnf.activity.id": str(command.get("id") or ""),
            "openfnf.activity.kind": str(command.get("kind") or ""), "openfnf.resource": str(command.get("resource") or ""),
            "openfnf.activity.mode": mode_of(command),
        }  # fmt: skip
        with tracing.span(ACTIVITY, attributes, parent=str(command.get("tp") or ""), link_current=True) as span:
            if waits_for_report(command):
                self.state.hset(keys.tasks(tag), f"tp:{command.get('id')}", tracing.traceparent())
            outcome = execute(self, tag, command)
            if not getattr(outcome, "succeeded", True):
                tracing.failed(span, str(getattr(outcome, "error", "")), str(getattr(outcome, "cause", "")))
            return outcome

    return wrapper


def with_trace(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Activity commands carrying the current (drive) span's traceparent, for the activity's span."""
    tp = tracing.traceparent()
    return [{**c, "tp": tp} for c in commands] if tp else commands


@contextlib.contextmanager
def _timer_spans(state: Any, due: list[dict[str, Any]]) -> Iterator[None]:
    tags = [str(e.get("tag", "")) for e in due]
    pipe = state.pipeline(transaction=False)
    for tag in tags:
        pipe.hmget(keys.execution(tag), "tp", "flow")
    stored = pipe.execute()
    with contextlib.ExitStack() as stack:
        for entry, tag, (tp, flow) in zip(due, tags, stored, strict=True):
            event = entry.get("event") or {}
            attributes = {
                tracing.FLOW: as_str(flow), tracing.EXECUTION: keys.split_tag(tag)[1],
                "openfnf.timer.id": str(event.get("id") or ""), "openfnf.event": str(event.get("t") or ""),
            }  # fmt: skip
            stack.enter_context(tracing.span(TIMER, attributes, parent=as_str(tp)))
        yield


def timer_spans(state: Any, due: list[dict[str, Any]]) -> contextlib.AbstractContextManager[Any]:
    """One `openfnf.timer` span per due timer entry ({tag, event}) in its execution's trace, around
    the round trip that delivers them (one more round trip reads their traceparents)."""
    if tracing.tracer is None or not due:
        return contextlib.nullcontext()
    return _timer_spans(state, due)


def child_start(parent_tag: str, flow: str, name: str) -> contextlib.AbstractContextManager[Any]:
    """The root span of a child execution's own trace, linked to the activity that starts it; the
    child's record stores its traceparent (tracing.traceparent() inside the block)."""
    attributes = {tracing.FLOW: flow, tracing.EXECUTION: name, "openfnf.parent.execution": keys.split_tag(parent_tag)[1]}
    return tracing.span(CHILD_START, attributes, parent="", link_current=True)


def schedule_start(flow: str, name: str, schedule: str) -> contextlib.AbstractContextManager[Any]:
    """The root span of an execution a schedule starts (timers process); its record stores the traceparent."""
    attributes = {tracing.FLOW: flow, tracing.EXECUTION: name, "openfnf.schedule": schedule}
    return tracing.span(SCHEDULE_START, attributes, parent="")


def report_span(state: Any, tag: str, task_id: str, ok: bool) -> contextlib.AbstractContextManager[Any]:
    """`openfnf.report` in the execution's trace, linked to the task that waited (sync client: the
    service reporting a child's end to its parent's task)."""
    if tracing.tracer is None:
        return contextlib.nullcontext()
    pipe = state.pipeline(transaction=False)
    pipe.hmget(keys.execution(tag), "tp", "flow")
    pipe.hget(keys.tasks(tag), f"tp:{task_id}")
    (record_tp, flow), task_tp = pipe.execute()
    attributes = {
        tracing.FLOW: as_str(flow), tracing.EXECUTION: keys.split_tag(tag)[1], "openfnf.task.id": task_id,
        "openfnf.report.ok": ok, "openfnf.reporter": "service",
    }  # fmt: skip
    return tracing.span(REPORT, attributes, parent=as_str(record_tp), links=[as_str(task_tp)], link_current=True)
