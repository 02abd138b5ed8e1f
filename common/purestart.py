"""Pure flows run to their end by the start itself (StartExecution, StartSyncExecution; issue 17), pure logic: no I/O.

A flow whose states are all pure (Pass, Choice, Succeed, Fail, and Parallel or inline Map scopes of
those) decides nothing that depends on anything but its input: no function, no timer, no callback.
DESIGN.md hands every execution to a worker, whose first drive would run all of it at once anyway,
then write it in one commit; the start can run the same interpreter on the same Started event and
write the ended execution with its claim instead, in one atomic script (claim.lua, given a retention).
The execution is then never Running to anyone: no wake-up, no running count, no drive message, no
lease, no acquire and no commit. On the 10-state Pass flow that is about half of redis-server's work
per execution (bench/rediscost.py `at-claim`, bench/rediswork.py).

It is still an actor's single decision: nobody can see the execution before its claim, so nobody
else decides anything about it meanwhile. What decides it is the same `advance`, so the history,
the output and the stored interpreter state are what a worker would have written (a later
RedriveExecution resumes from that state on a worker like any other).

The start falls back to the workers (returns None here) when the flow is not pure, when the run
does not end in one decision without commands (a flow timeout arms a timer), or when it would write
more than `budget` history events: a Choice loop or a large inline Map is left to the workers, so a
front door never spends long on one request (OPENFNF_PURE_AT_START_EVENTS).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from common.fdl import FlowDef, parse_definition
from common.interpreter import Decision, Status, advance
from common.interpreter.model import Errors, Limits
from common.records import dumps, encode_history_chunk
from common.settings import Settings

_PURE: dict[str, FlowDef | None] = {}  # definition id -> the parsed definition if pure, else None (immutable)
_PURE_MAX = 512  # definitions remembered; the whole memo is dropped when full (a front door runs few flows)
PURE_TYPES = frozenset({"pass", "choice", "succeed", "fail", "parallel", "foreach", "map"})


def is_pure(flow: FlowDef) -> bool:
    """Whether every state of the flow, in every scope, is one the interpreter runs without a command."""
    scopes = [flow.root, *flow.scopes.values()]
    return all(state.type in PURE_TYPES and state.task is None for scope in scopes for state in scope.states.values())


def end_fields(decision: Decision, now: int) -> list[str]:
    """The record's field, value pairs an ended decision writes (status, stopped, and output or error and cause)."""
    fields = ["status", decision.status.value, "stopped", str(now)]
    if decision.status == Status.SUCCEEDED:
        return [*fields, "output", dumps(decision.output)]
    return [*fields, "error", decision.error or "", "cause", decision.cause or ""]


@dataclass(frozen=True)
class Ended:
    """An execution run to its end at its start: what its claim writes besides the new record's fields."""

    fields: tuple[str, ...]  # field, value pairs: the end (end_fields), the interpreter state and the history length
    history_chunk: bytes  # records.encode_history_chunk of the whole history
    events: tuple[str, ...]  # the history's event types, in order (for metrics)


def run_at_start(flow: FlowDef, started_event: dict[str, Any], now: int, limits: Limits, budget: int) -> Ended | None:
    """The execution run to its end by one decision on its Started event, or None when the workers must run it."""
    if budget <= 0 or not is_pure(flow):
        return None
    room = min(budget, limits.max_history_events)
    decision = advance(flow, None, [started_event], now, limits=replace(limits, max_history_events=room))
    if not decision.ended or decision.commands:
        return None
    if decision.error == Errors.HISTORY_LIMIT and room < limits.max_history_events:
        return None  # over the budget, not over the execution's own limit: the workers run it
    fields = (*end_fields(decision, now), "state", dumps(decision.state), "hseq", str(len(decision.history)))
    return Ended(fields, encode_history_chunk(decision.history), tuple(e.type for e in decision.history))


def pure_flow(def_id: str, text: str) -> FlowDef | None:
    """The parsed definition with this content id if its flow is pure (is_pure), else None; remembered by id."""
    if def_id in _PURE:
        return _PURE[def_id]
    try:
        parsed: FlowDef | None = parse_definition(text)
    except Exception:  # noqa: BLE001 - a stored definition was checked when it was stored; the workers report it
        parsed = None
    found = parsed if parsed is not None and is_pure(parsed) else None
    if len(_PURE) >= _PURE_MAX:
        _PURE.clear()
    _PURE[def_id] = found
    return found


def execution_limits(settings: Settings) -> Limits:
    """The interpreter's limits of every execution (OPENFNF_MAX_STATE_BYTES, OPENFNF_MAX_HISTORY_EVENTS)."""
    return Limits(max_state_bytes=settings.max_state_bytes, max_history_events=settings.max_history_events)
