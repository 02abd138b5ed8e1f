"""Wait: a timer, unless the time has already come (zero seconds, a past timestamp), then it ends at once."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.errors import ExpressionError
from common.fdl.model import StateDef
from common.interpreter.model import Errors
from common.interpreter.outcomes import BLOCKED, Outcome, StateError
from common.timefmt import parse_rfc3339

if TYPE_CHECKING:
    from common.interpreter.engine import Run

MAX_OLD_WAIT_MS = 2 * 86400 * 1000  # old syntax: "The maximum wait time is limited to two days."
# New syntax: the most CreateFlow takes for a constant Seconds (366 days, 31,622,400 s); a wait computed
# from data (Seconds.$, Timestamp.$) longer than this fails the state rather than wait for ever.
MAX_NEW_WAIT_MS = 366 * 86400 * 1000


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    entered, effective = run.rules.begin(frame, state)
    fire_at = _fire_at(run, state, effective, entered)
    if fire_at <= run.now:
        return run.finish_state(fid, frame, state, effective, run.rules.plain_output(effective), entered)
    cid = f"{entered}/wait"
    frame["wait"] = {"k": "wait", "e": entered, "in": effective, "tmr": cid}
    run.start_timer(fid, cid, fire_at)
    return BLOCKED


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    rec = frame["wait"]
    if cid != rec.get("tmr"):
        return None
    run.resolve(cid)
    return run.finish_state(fid, frame, state, rec["in"], run.rules.plain_output(rec["in"]), int(rec["e"]), rec)


def _fire_at(run: Run, state: StateDef, effective: Any, entered: int) -> int:
    spec = state.wait
    assert spec is not None
    try:
        if spec.seconds is not None:
            return run.now + int(round(spec.seconds * 1000))
        if spec.until_ms is not None:
            until = spec.until_ms
        elif spec.seconds_fn is not None:
            seconds = spec.seconds_fn(run.rules.env(state, effective, entered, "wait"))
            if isinstance(seconds, str):
                seconds = float(seconds)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise StateError(Errors.RUNTIME, f"{state.name}: the wait duration must be a number of seconds >= 0, not {seconds!r}")
            return _capped(run, state, run.now + int(round(seconds * 1000)))
        else:
            assert spec.until_fn is not None
            value = spec.until_fn(run.rules.env(state, effective, entered, "wait"))
            if not isinstance(value, str):
                raise StateError(Errors.RUNTIME, f"{state.name}: the wait time must be an RFC 3339 string, not {value!r}")
            until = parse_rfc3339(value)
    except ExpressionError as exc:
        raise StateError(Errors.RUNTIME, f"{state.name}: {exc}") from None
    except (ValueError, OverflowError) as exc:
        raise StateError(Errors.RUNTIME, f"{state.name}: {exc}") from None
    return _capped(run, state, until)


def _capped(run: Run, state: StateDef, fire_at: int) -> int:
    if run.rules.syntax == "old":
        if fire_at - run.now > MAX_OLD_WAIT_MS:
            raise StateError(Errors.RUNTIME, f"{state.name}: a wait step may last at most two days")
    elif fire_at - run.now > MAX_NEW_WAIT_MS:
        raise StateError(Errors.RUNTIME, f"{state.name}: a Wait may last at most {MAX_NEW_WAIT_MS // 1000} seconds (366 days)")
    return fire_at
