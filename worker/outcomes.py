"""What an activity ends with: a result, or an error name and cause (the names retry/catch match)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A call answered with something that is not JSON the service takes (nested deeper than
# OPENFNF_MAX_JSON_DEPTH, NaN or Infinity, a value JSON cannot hold): the task fails, Retry/Catch see it.
INVALID_RESULT = "FnF.InvalidTaskResult"


@dataclass(frozen=True)
class Outcome:
    """The end of one activity attempt."""

    succeeded: bool
    result: Any = None
    error: str = ""
    cause: str = ""

    @classmethod
    def ok(cls, result: Any) -> Outcome:
        """A success carrying `result`."""
        return cls(True, result=result)

    @classmethod
    def failed(cls, error: str, cause: str) -> Outcome:
        """A failure named `error`."""
        return cls(False, error=error, cause=cause[:4096])
