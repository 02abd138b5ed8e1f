"""Choice: the first branch whose condition holds, else the default.

New syntax: go to the branch's Next. Old syntax: run the branch's `steps` (a child frame), then its
`goto`, or the step after the choice; no branch and no default ends the choice with nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.errors import ExpressionError
from common.fdl.expressions import truthy
from common.fdl.model import ChoiceRule, StateDef
from common.interpreter.model import Errors
from common.interpreter.outcomes import Outcome, StateError
from common.interpreter.states import fanout

if TYPE_CHECKING:
    from common.interpreter.engine import Run


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    entered, effective = run.rules.begin(frame, state)
    index, rule = _pick(run, state, effective, entered)
    if rule is not None and rule.scope is not None:
        return fanout.start_choice_branch(run, fid, frame, state, entered, effective, index, rule.scope)
    if run.rules.syntax == "new":
        assert rule is not None  # a new-syntax Choice always has a Default
        return run.finish_state(fid, frame, state, effective, effective, entered, goto=rule.goto)
    return run.finish_state(fid, frame, state, effective, {}, entered, goto=rule.goto if rule else None)


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    return fanout.resume(run, fid, frame, state, cid, event)


def _pick(run: Run, state: StateDef, effective: Any, entered: int) -> tuple[int, ChoiceRule | None]:
    env = run.rules.env(state, effective, entered, "choice")
    for index, rule in enumerate(state.choices):
        assert rule.test is not None
        try:
            hit = truthy(rule.test(env))
        except ExpressionError as exc:
            raise StateError(Errors.RUNTIME, f"{state.name}: condition '{rule.condition}': {exc}") from None
        if hit:
            return index, rule
    return -1, state.default
