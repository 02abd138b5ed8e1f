"""Pass, Succeed and Fail: states that finish the moment they start."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.model import StateDef
from common.interpreter.model import Errors
from common.interpreter.outcomes import Failed, Outcome

if TYPE_CHECKING:
    from common.interpreter.engine import Run


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    """Pass forwards (new) or produces nothing (old); Succeed also ends its scope; Fail fails it."""
    entered, effective = run.rules.begin(frame, state)
    if state.type == "fail":
        default = Errors.FAIL if run.rules.syntax == "new" else ""
        error, cause = state.error or default, state.cause or ""
        run.emit(frame, "StepFailed", state.name, {"error": error, "cause": cause})
        return Failed(error, cause)
    return run.finish_state(fid, frame, state, effective, run.rules.plain_output(effective), entered)


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    """These states never wait."""
    return None
