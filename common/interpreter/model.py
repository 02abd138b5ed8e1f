"""What goes in and out of the interpreter: inbox events, history events, the Decision."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class HistoryEvent:
    """One GetExecutionHistory event; `detail` is serialised to the EventDetail JSON string."""

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
