"""Redrive (issue 18): reopen a Failed, Stopped or TimedOut execution and resume it where it did not succeed.

An end that is not a success keeps a resumable snapshot in the state, `state["resume"] = {"frames":
{frame id: frame}}`: the frames that were running, failed or were cancelled at the end, each at the
state it had reached (see engine.py for the frame layout). A `Redriven` inbox event
    {"t": "Redriven", "n": redrive count}     (n as reopen.lua counted it; absent: the state's count + 1)
reopens such an execution (any other status drops it): ExecutionRedriven {redriveCount} is appended,
the status is Running again, and the snapshot resumes:
  - a Parallel / Map / old choice step (a "fan" frame) keeps the results of the children that
    succeeded, and only its failed or cancelled children run again (items never started start later);
  - a distributed Map enters its state again with its Retry budget reset, but its first attempt
    goes on with the MapRun it had (states/dmap.py, worker/mapruns.py): only the items that did not
    succeed run again;
  - every other frame enters its current state again from scratch: a Task starts from its first
    attempt with its Retry budget reset, a Wait waits its full time again.
The flow's own timeout (if any) starts afresh from the redrive. Without a snapshot (the execution
was stopped before it started, or its flow inputMappings failed) the flow runs again from its start.
Pure: a function of (state, event, now), like the rest of the interpreter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.interpreter.model import Errors, Status
from common.interpreter.outcomes import StateError

if TYPE_CHECKING:
    from common.interpreter.engine import Run

REDRIVEN = "Redriven"  # the inbox event kind (reopen.lua appends it)
REDRIVABLE = frozenset({Status.FAILED.value, Status.STOPPED.value, Status.TIMED_OUT.value})


def forget_under(run: Run, fid: str) -> None:
    """A frame goes on after a failure under it (Retry, Catch): the frames that died under it are no longer resumable."""
    graveyard = run.graveyard
    if not graveyard:
        return
    for gid in list(graveyard):
        parent = graveyard[gid]["parent"]
        seen = 0
        while parent is not None and seen < 10_000:
            if parent == fid:
                graveyard.pop(gid, None)
                break
            up = graveyard.get(parent) or run.frames.get(parent)
            parent = up["parent"] if up is not None else None
            seen += 1


def snapshot(run: Run) -> dict[str, Any] | None:
    """The resumable frames at an end that is not a success: the root and what hangs under it; None if no root."""
    return resumable({**run.graveyard, **run.frames})


def resumable(frames: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The snapshot of these frames (a failed run's, or those of a state that abort() ended): the root and
    what hangs under it; None if there is no root."""
    roots = [fid for fid, f in frames.items() if f["parent"] is None]
    if not roots:
        return None
    keep: dict[str, dict[str, Any]] = {}
    for fid in sorted(frames, key=_order):
        frame = frames[fid]
        parent = frame["parent"]
        if parent is None or parent in keep:
            keep[fid] = frame  # parents are created before their children: lower ids
    return {"frames": keep}


def reopen(run: Run, event: dict[str, Any]) -> None:
    """Apply a Redriven event to an ended execution (see the module docstring)."""
    from common.interpreter.engine import _FLOW_FRAME, FLOW_TIMER

    state = run.state
    if state["status"] not in REDRIVABLE:
        return  # a Succeeded execution is never reopened
    if run.next_event_id() + 1 >= run.max_events:
        return  # no room for ExecutionRedriven and a step (reopen.lua refuses this; a late event changes nothing)
    resume = state.pop("resume", None)
    given = event.get("n")
    count = given if isinstance(given, int) and not isinstance(given, bool) and given > 0 else int(state.get("redrives", 0)) + 1
    for key in ("output", "error", "cause"):
        state.pop(key, None)
    state["status"] = Status.RUNNING.value
    state["redrives"] = count
    redriven = run._emit("ExecutionRedriven", "", {"redriveCount": count}, int(state["seq"]))
    if run.flow.timeout_seconds:
        run.start_timer(_FLOW_FRAME, f"{FLOW_TIMER}/{count}", run.now + run.flow.timeout_seconds * 1000)
    if not resume or not resume.get("frames"):
        _from_start(run, redriven)
        return
    frames = {fid: _copy_frame(frame) for fid, frame in resume["frames"].items()}
    kids: dict[str, dict[str, str]] = {}
    for fid, frame in frames.items():
        if frame["parent"] is not None:
            kids.setdefault(frame["parent"], {})[str(frame["slot"])] = fid
    alive: dict[str, dict[str, Any]] = {}
    leaves: list[str] = []
    for fid in sorted(frames, key=_order):
        frame = frames[fid]
        parent = frame["parent"]
        if parent is not None and (parent not in alive or alive[parent]["wait"] is None):
            continue  # its parent enters its state again, which starts its children anew
        rec = frame.get("wait")
        mine = kids.get(fid)
        if mine and isinstance(rec, dict) and rec.get("k") == "fan" and "kids" in rec:
            rec.update(kids=mine, run=len(mine), fail=None, fill=False, bo=None)
        else:
            if isinstance(rec, dict) and rec.get("k") == "dmap" and (rec.get("mr") or rec.get("act")):
                frame["mr"] = {"name": rec.get("mr") or "", "act": rec.get("act") or ""}  # states/dmap.py goes on with it
            frame["wait"] = None
            leaves.append(fid)
        alive[fid] = frame
    # a fan frame whose children were all dropped has nothing to wait for: it enters its state again
    for fid, frame in alive.items():
        rec = frame["wait"]
        if rec is not None and not any(k in alive for k in rec["kids"].values()):
            frame["wait"] = None
            leaves.append(fid)
    run.frames.update(alive)
    for fid in sorted(leaves, key=_order):
        if run.ended:
            return
        leaf = run.frames.get(fid)
        if leaf is None or leaf["wait"] is not None:
            continue  # cancelled by a sibling that failed again at once, or already running
        run.run_frame(fid)


def _from_start(run: Run, redriven: int) -> None:
    try:
        data = run.rules.flow_data(run.ctx.get("input") if run.ctx.get("input") is not None else {})
    except (StateError, ValueError, TypeError) as exc:
        run.end("ExecutionFailed", Status.FAILED, Errors.RUNTIME, f"flow inputMappings: {exc}", redriven)
        return
    fid = run.new_frame(None, 0, run.flow.root.key, data, redriven, "root")
    run.run_frame(fid)


def _copy_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame's bookkeeping copied (as engine._copy_state does); its data objects are never mutated, so shared."""
    out = dict(frame)
    wait = out.get("wait")
    if isinstance(wait, dict):
        w = dict(wait)
        for key in ("kids", "r"):
            if isinstance(w.get(key), dict):
                w[key] = dict(w[key])
        if isinstance(w.get("res"), list):
            w["res"] = list(w["res"])
        out["wait"] = w
    return out


def _order(fid: str) -> tuple[int, str]:
    return (int(fid), fid) if fid.isdigit() else (1 << 62, fid)
