"""Parallel, Map / foreach, and an old choice branch's steps: states that run child frames and join them.

Children run concurrently: each is a frame of its own, started up to the concurrency limit, and
the join is by slot, so results may arrive in any order. A failing child cancels its siblings and
fails the state (Retry / Catch of a new-syntax Parallel or Map then apply).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.errors import ExpressionError
from common.fdl.model import StateDef
from common.interpreter.model import Errors
from common.interpreter.outcomes import BLOCKED, Failed, Outcome, StateError

if TYPE_CHECKING:
    from common.interpreter.engine import Run

DEFAULT_CONCURRENCY = 100  # foreach and Map without MaxConcurrency ("up to 100 ... concurrently")
_KIND = {"parallel": "branch", "map": "iteration", "foreach": "iteration", "choice": "choice"}
_ENTERED = {"branch": "BranchEntered", "iteration": "IterationEntered"}


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    entered, effective = run.rules.begin(frame, state)
    rec: dict[str, Any] = {"k": "fan", "e": entered, "in": effective, "st": frame["last"], "r": {}, "rc": 0}
    frame["wait"] = rec
    return _restart(run, fid, frame, state, rec)


def start_choice_branch(run: Run, fid: str, frame: dict[str, Any], state: StateDef, entered: int, effective: Any, index: int, scope: str) -> Outcome:
    """Run the steps of the chosen branch of an old choice step as one child frame."""
    rec = {"k": "fan", "e": entered, "in": effective, "st": frame["last"], "ch": index, "scope": scope}
    frame["wait"] = rec
    return _restart(run, fid, frame, state, rec)


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    """The back-off before a retry is over: run the whole state again."""
    rec = frame["wait"]
    if cid != rec.get("bo"):
        return None
    run.resolve(cid)
    rec["bo"] = None
    return _restart(run, fid, frame, state, rec)


def child_done(run: Run, fid: str, frame: dict[str, Any], state: StateDef, slot: int, result: Any) -> Outcome | None:
    """A child frame ended well; start the next item, or join when all are done."""
    rec = frame["wait"]
    rec["kids"].pop(str(slot), None)
    rec["res"][slot] = result
    rec["done"] += 1
    rec["run"] -= 1
    if rec["fill"]:
        return None  # the loop in _fill that started it carries on
    return _fill(run, fid, frame, state, rec, None)


def child_failed(run: Run, fid: str, frame: dict[str, Any], state: StateDef, slot: int, failed: Failed) -> Outcome | None:
    """A child frame failed: the siblings are cancelled and the state fails with the child's error."""
    rec = frame["wait"]
    rec["kids"].pop(str(slot), None)
    rec["run"] -= 1
    if rec["fill"]:
        rec["fail"] = [failed.error, failed.cause]
        return None
    return _fail(run, fid, frame, state, rec, failed.error, failed.cause)


# ---------------------------------------------------------------- internals


def _restart(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any]) -> Outcome:
    items = None
    if state.type in ("map", "foreach"):
        items = _items(run, state, rec)
        count = len(items)
    elif state.type == "parallel":
        assert state.fan is not None
        count = len(state.fan.scopes)
    else:
        count = 1
    limit = count if state.type in ("parallel", "choice") else (state.fan.max_concurrency if state.fan else 0) or DEFAULT_CONCURRENCY
    rec.update(n=count, next=0, run=0, done=0, res=[None] * count, kids={}, fill=False, fail=None, lim=limit)
    if items is not None and count > limit:
        rec["items"] = items  # needed to start the later items as earlier ones finish
    return _fill(run, fid, frame, state, rec, items)


def _items(run: Run, state: StateDef, rec: dict[str, Any]) -> list[Any]:
    assert state.fan is not None and state.fan.items_fn is not None
    try:
        items = state.fan.items_fn(run.rules.env(state, rec["in"], int(rec["e"]), "items"))
    except ExpressionError as exc:
        raise StateError(Errors.RUNTIME, f"{state.name}: {state.fan.items_expr}: {exc}") from None
    if not isinstance(items, list):
        what = "ItemsPath" if state.type == "map" else "iterationMapping.collection"
        raise StateError(Errors.RUNTIME, f"{state.name}: {what} {state.fan.items_expr} must give an array, not {_short(items)}")
    return items


def _fill(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any], items: list[Any] | None) -> Outcome:
    """Start children while there is room; join if all are done."""
    rec["fill"] = True
    kind = _KIND[state.type]
    while rec["next"] < rec["n"] and rec["run"] < rec["lim"] and rec["fail"] is None:
        slot = rec["next"]
        rec["next"] = slot + 1
        rec["run"] += 1
        if kind == "iteration":
            pool = items if items is not None else rec["items"]
            data = run.rules.child_data(rec["in"], pool[slot], slot, state)
            scope = state.fan.scopes[0] if state.fan else ""
        elif kind == "branch":
            data = run.rules.child_data(rec["in"])
            scope = state.fan.scopes[slot] if state.fan else ""
        else:
            data = run.rules.child_data(rec["in"])
            scope = rec["scope"]
        child = run.new_frame(fid, slot, scope, data, int(rec["st"]), kind)
        rec["kids"][str(slot)] = child
        if kind in _ENTERED:
            run.emit(run.frames[child], _ENTERED[kind], state.name, {"index": slot, "input": run.rules.child_input(data)})
        run.run_frame(child)
    rec["fill"] = False
    if rec["fail"] is not None:
        error, cause = rec["fail"]
        return _fail(run, fid, frame, state, rec, error, cause)
    if rec["done"] == rec["n"]:
        return _join(run, fid, frame, state, rec)
    return BLOCKED


def _join(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any]) -> Outcome:
    if state.type == "choice":
        index = int(rec["ch"])  # the chosen rule; -1 is the default
        rule = state.default if index < 0 else state.choices[index]
        return run.finish_state(fid, frame, state, rec["in"], rec["res"][0], int(rec["e"]), rec, goto=rule.goto if rule else None)
    raw = run.rules.fan_result(state, rec["res"])
    return run.finish_state(fid, frame, state, rec["in"], raw, int(rec["e"]), rec)


def _fail(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any], error: str, cause: str) -> Outcome:
    for child in list(rec["kids"].values()):
        run.cancel_frame(child)
    rec["kids"] = {}
    return run.state_failed(fid, frame, state, error, cause, rec["in"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
