"""What happened to each state of a flow graph, and the timeline, read from an execution's history (pure).

Events name their state by name only, and names repeat across scopes (two branches may both
have `Same`), so each event's scope is followed through its ScheduleEventId chain: a
BranchEntered/IterationEntered opens its branch's scope, every other event stays in the scope of
the event it follows. A visit is one entry into a state (StepEntered) up to StepExited/StepFailed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common.fdl.model import FlowDef
from common.graph import Graph
from common.interpreter.model import HistoryEvent


class StateStatus(StrEnum):
    """How a state is coloured."""

    NOT_REACHED = "not-reached"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CAUGHT = "caught"  # failed, and a Catch rule moved on
    RETRIED = "retried"  # succeeded after retries, or waiting for its next attempt
    WAITING = "waiting"  # a callback task submitted, waiting for ReportTask* / the child's end
    STOPPED = "stopped"  # still open when the execution was stopped or timed out


TASK_ENDS = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskReported"})
FAN_KINDS = frozenset({"parallel", "map", "foreach", "choice"})


@dataclass
class Attempt:
    """One attempt of a task: scheduled, maybe submitted (callback modes), ended."""

    number: int
    scheduled: int  # ms
    submitted: int | None = None
    ended: int | None = None
    outcome: str = ""  # the ending event type
    error: str = ""
    cause: str = ""
    task_id: str = ""  # the activity id: what its task token names
    resource: str = ""  # what it calls (an ARN, or the new-syntax Action)
    parameters: Any = None


@dataclass
class Visit:
    """One entry into a state."""

    id: int  # EventId of its StepEntered
    node: str
    step: str
    scope: str
    entered: int  # ms
    owner: Visit | None = None  # the visit it runs inside (a Parallel/Map/choice-with-steps state)
    ended: int | None = None
    outcome: str = ""  # succeeded | failed | caught
    input: Any = None
    output: Any = None
    error: str = ""
    cause: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    events: list[int] = field(default_factory=list)


@dataclass
class StateView:
    """What the console shows for one node: its colour, and the visits behind it."""

    node: str
    status: StateStatus
    visits: list[Visit]

    @property
    def last(self) -> Visit:
        """The latest visit."""
        return self.visits[-1]

    @property
    def waiting_task(self) -> Attempt | None:
        """The attempt of the latest visit that waits for a callback, if any."""
        if self.status is not StateStatus.WAITING:
            return None
        for attempt in reversed(self.last.attempts):
            if attempt.submitted is not None and attempt.ended is None:
                return attempt
        return None


@dataclass
class Overlay:
    """Every visited node's view, and every visit in order."""

    states: dict[str, StateView]
    visits: list[Visit]
    ended: int | None  # when the execution ended (ms), None while it runs
    end_type: str  # ExecutionSucceeded / ...Failed / ...Stopped / ...TimedOut, '' while it runs

    def status_of(self, node: str) -> StateStatus:
        """A node's colour (NOT_REACHED when no visit)."""
        view = self.states.get(node)
        return view.status if view else StateStatus.NOT_REACHED


class _Reader:
    def __init__(self, flow: FlowDef, graph: Graph) -> None:
        self.flow = flow
        self.graph = graph
        self.scope_of: dict[int, str] = {}
        self.visit_of: dict[int, Visit] = {}  # event id -> the visit it belongs to
        self.visits: list[Visit] = []
        self.ended: int | None = None
        self.end_type = ""
        self.kinds = {n.id: n.kind for n in graph.nodes}
        self.branches_seen: dict[int, set[int]] = {}  # Parallel/Map visit id -> branch/iteration indexes entered

    def _resolve(self, step: str, scope: str) -> str:
        """The scope where `step` stands, looking from `scope` outwards, then into nested choice branches."""
        at: str | None = scope
        while at is not None:
            if step in self.flow.scopes[at].states:
                return at
            at = self.graph.scope_parent.get(at)
        for key, parent in self.graph.scope_parent.items():
            if parent == scope and step in self.flow.scopes[key].states:
                return key
        for key in self.flow.scopes:
            if step in self.flow.scopes[key].states:
                return key
        return scope

    def _visit_for(self, e: HistoryEvent) -> Visit | None:
        """The open visit of e's step that e continues: the one of the event it follows, or an enclosing one."""
        visit = self.visit_of.get(e.sched)
        while visit is not None and (visit.step != e.step or visit.ended is not None):
            visit = visit.owner
        return visit

    def read(self, events: list[HistoryEvent]) -> Overlay:
        root = self.flow.root.key
        for e in events:
            if not e.step:
                self.scope_of[e.id] = root
                if e.type == "ExecutionRedriven":  # reopened (issue 18): running again after its end
                    self.ended, self.end_type = None, ""
                elif e.type.startswith("Execution") and e.type != "ExecutionStarted":
                    self.ended, self.end_type = e.time, e.type
                continue
            if e.type == "StepEntered":
                self._enter(e)
                continue
            visit = self._visit_for(e)
            if visit is None:
                continue
            self.visit_of[e.id] = visit
            self.scope_of[e.id] = visit.scope
            visit.events.append(e.id)
            if e.type in ("BranchEntered", "IterationEntered"):
                self.scope_of[e.id] = self._branch_scope(e, visit.scope)
                seen = self.branches_seen.setdefault(visit.id, set())
                index = int(e.detail.get("index", 0))
                if index in seen:  # the whole Parallel/Map is retried: what ran inside it before is abandoned
                    self._abandon(visit, e.time)
                    seen.clear()
                seen.add(index)
            elif e.type not in ("BranchExited", "IterationExited"):
                self._event(e, visit)
        for visit in self.visits:
            if visit.ended is None and self.ended is not None:
                visit.ended, visit.outcome = self.ended, "stopped"
        return self._views()

    def _abandon(self, owner: Visit, now: int) -> None:
        """Close the visits still open inside `owner` (their branch was cancelled or restarted)."""
        for visit in self.visits:
            if visit.ended is None and visit is not owner:
                at = visit.owner
                while at is not None and at is not owner:
                    at = at.owner
                if at is owner:
                    visit.ended, visit.outcome = now, "stopped"

    def _branch_scope(self, e: HistoryEvent, scope: str) -> str:
        state = self.flow.scopes[scope].states.get(e.step)
        if state is None or state.fan is None:
            return scope
        index = int(e.detail.get("index", 0)) if e.type == "BranchEntered" else 0
        return state.fan.scopes[min(max(index, 0), len(state.fan.scopes) - 1)]

    def _enter(self, e: HistoryEvent) -> None:
        before = self.visit_of.get(e.sched)
        if before is not None and before.ended is None:
            owner: Visit | None = before  # the first state inside a branch, an iteration or a choice's steps
        else:
            owner = before.owner if before is not None else None
            if before is not None and before.outcome == "failed":
                before.outcome = "caught"  # the frame went on after the failure: a Catch rule took it
        scope = self._resolve(e.step, self.scope_of.get(e.sched, self.flow.root.key))
        node = self.graph.by_state.get((scope, e.step), "")
        visit = Visit(e.id, node, e.step, scope, e.time, owner=owner, input=e.detail.get("input"))
        self.visits.append(visit)
        self.visit_of[e.id] = visit
        self.scope_of[e.id] = scope
        visit.events.append(e.id)

    def _event(self, e: HistoryEvent, visit: Visit) -> None:
        detail = e.detail
        t = e.type
        if t == "StepStarted":
            visit.input = detail.get("input", visit.input)
        elif t == "TaskScheduled":
            number = int(detail.get("attempt", len(visit.attempts) + 1))
            task_id = str(visit.id) if number == 1 else f"{visit.id}/{number}"
            visit.attempts.append(
                Attempt(number, e.time, task_id=task_id, resource=str(detail.get("resource", "")), parameters=detail.get("parameters"))
            )
        elif t == "TaskSubmitted" and visit.attempts:
            visit.attempts[-1].submitted = e.time
        elif t in TASK_ENDS and visit.attempts:
            attempt = visit.attempts[-1]
            attempt.ended, attempt.outcome = e.time, t
            attempt.error, attempt.cause = str(detail.get("error", "")), str(detail.get("cause", ""))
        elif t == "StepSucceeded":
            visit.output = detail.get("output")
        elif t == "StepExited":
            if self.kinds.get(visit.node) in FAN_KINDS:
                self._abandon(visit, e.time)
            visit.ended = e.time
            visit.outcome = visit.outcome or "succeeded"
            if "output" in detail:
                visit.output = detail["output"]
        elif t == "StepFailed":
            if self.kinds.get(visit.node) in FAN_KINDS:
                self._abandon(visit, e.time)
            visit.ended, visit.outcome = e.time, "failed"
            visit.error, visit.cause = str(detail.get("error", "")), str(detail.get("cause", ""))

    def _views(self) -> Overlay:
        by_node: dict[str, list[Visit]] = {}
        for visit in self.visits:
            if visit.node:
                by_node.setdefault(visit.node, []).append(visit)
        states = {node: StateView(node, self._status(visits), visits) for node, visits in by_node.items()}
        return Overlay(states, self.visits, self.ended, self.end_type)

    @staticmethod
    def _status(visits: list[Visit]) -> StateStatus:
        open_visits = [v for v in visits if v.ended is None]
        if open_visits:
            last = open_visits[-1]
            attempt = last.attempts[-1] if last.attempts else None
            if attempt is not None and attempt.submitted is not None and attempt.ended is None:
                return StateStatus.WAITING
            if attempt is not None and attempt.ended is not None and attempt.outcome != "TaskReported" and attempt.error:
                return StateStatus.RETRIED  # failed, its next attempt not scheduled yet: a retry back-off
            return StateStatus.RUNNING
        last = visits[-1]
        if last.outcome == "stopped":
            return StateStatus.STOPPED
        if last.outcome == "failed":
            return StateStatus.FAILED
        if last.outcome == "caught":
            return StateStatus.CAUGHT
        if any(len(v.attempts) > 1 for v in visits):
            return StateStatus.RETRIED
        return StateStatus.SUCCEEDED


def read_history(flow: FlowDef, graph: Graph, events: list[HistoryEvent]) -> Overlay:
    """Each node's status and visits after these events (the execution's whole history, in order)."""
    return _Reader(flow, graph).read(events)


@dataclass(frozen=True)
class Bar:
    """One row of the timeline: a state's visit, a task attempt, a retry back-off or a callback wait."""

    label: str
    kind: str  # state, attempt, retry, callback
    start: int  # ms
    end: int | None  # None: still open
    status: str  # a StateStatus value, or the attempt's outcome
    node: str
    depth: int  # 0 for a state, 1 for what happens inside it


def timeline(overlay: Overlay, limit: int = 400) -> list[Bar]:
    """The Gantt rows of an execution, in start order (at most `limit`)."""
    bars: list[Bar] = []
    for visit in overlay.visits:
        if len(bars) >= limit:
            break
        status = visit.outcome or "running"
        bars.append(Bar(visit.step, "state", visit.entered, visit.ended, status, visit.node, 0))
        previous: Attempt | None = None
        for attempt in visit.attempts:
            if previous is not None and previous.ended is not None:
                bars.append(Bar(f"retry back-off {attempt.number - 1}", "retry", previous.ended, attempt.scheduled, "retried", visit.node, 1))
            end_of_call = attempt.submitted if attempt.submitted is not None else attempt.ended
            label = f"attempt {attempt.number}" + (f": {attempt.error}" if attempt.error else "")
            bars.append(Bar(label, "attempt", attempt.scheduled, end_of_call, attempt.outcome or "running", visit.node, 1))
            if attempt.submitted is not None:
                bars.append(Bar("waiting for callback", "callback", attempt.submitted, attempt.ended, attempt.outcome or "waiting", visit.node, 1))
            previous = attempt
    return bars[:limit]
