"""What running a state can come to, and the two ways a step of work can go wrong."""
from __future__ import annotations


class Done:
    """The state finished: go to `goto`, or to its successor, or end the scope when `end`."""

    __slots__ = ("goto", "end")

    def __init__(self, goto: str | None = None, end: bool = False) -> None:
        self.goto, self.end = goto, end


class Failed:
    """The state failed and nothing caught it: its scope fails with this error."""

    __slots__ = ("error", "cause")

    def __init__(self, error: str, cause: str) -> None:
        self.error, self.cause = error, cause


class _Blocked:
    """The state waits for a command's result (recorded in its frame)."""

    __slots__ = ()


BLOCKED = _Blocked()
DONE = Done()
END = Done(end=True)
Outcome = Done | Failed | _Blocked


class StateError(Exception):
    """A state cannot go on (bad data, a failing expression): a flow error that retry/catch may handle."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class Fatal(Exception):
    """The execution must fail at once (a limit was exceeded): never caught by the flow."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause
