"""The limits of Express flows, checked on a definition before it is stored (pure, no I/O).

Express executions run for at most a few minutes and only in request/response style: Wait states
may wait 1 to 20 seconds, tasks may not wait for callbacks, and a flow timeout may not exceed the
Express limit. The FDL parser checks everything else; this walks the raw document of either syntax,
so a limit is reported even for a state type the parser does not run yet.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

WAIT_MIN_SECONDS, WAIT_MAX_SECONDS = 1, 20
NEW_ALLOWED_MODES = (None, "RequestComplete")
OLD_ALLOWED_PATTERNS = (None, "requestResponse")


class ExpressLimitError(ValueError):
    """A definition that an Express flow may not run; the message names the state and the limit."""


def check_express(text: str, max_seconds: int) -> None:
    """Raise ExpressLimitError for the first state or setting over the Express limits."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return  # not parseable at all: the FDL parser says why
    if not isinstance(doc, dict):
        return
    if "Type" in doc:
        _check_timeout(doc.get("Timeout"), "Timeout", max_seconds)
        for where, state in _new_states(doc, ""):
            _check_new_state(where, state)
    elif "type" in doc:
        _check_timeout(doc.get("timeoutSeconds"), "timeoutSeconds", max_seconds)
        for where, step in _old_steps(doc.get("steps"), "steps"):
            _check_old_step(where, step)


def _check_timeout(value: Any, field: str, max_seconds: int) -> None:
    seconds = _int(value)
    if seconds is not None and seconds > max_seconds:
        raise ExpressLimitError(
            f"{field} {seconds} is over the Express limit: an Express execution runs for at most {max_seconds} seconds."
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _new_states(scope: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    states = scope.get("States")
    if not isinstance(states, list):
        return
    for i, state in enumerate(states):
        if not isinstance(state, dict):
            continue
        where = f"{prefix}States[{i}] ({state.get('Name')})"
        yield where, state
        branches = state.get("Branches")
        if state.get("Type") == "Parallel" and isinstance(branches, list):
            for b, branch in enumerate(branches):
                if isinstance(branch, dict):
                    yield from _new_states(branch, f"{where}.Branches[{b}].")
        for inner in ("Processor", "ItemProcessor"):
            if isinstance(state.get(inner), dict):
                yield from _new_states(state[inner], f"{where}.{inner}.")


def _check_new_state(where: str, state: dict[str, Any]) -> None:
    kind = state.get("Type")
    if kind == "Wait":
        seconds = _int(state.get("Seconds"))
        if seconds is not None and not WAIT_MIN_SECONDS <= seconds <= WAIT_MAX_SECONDS:
            raise ExpressLimitError(
                f"{where}: a Wait state of an Express flow waits {WAIT_MIN_SECONDS} to {WAIT_MAX_SECONDS} seconds, not {seconds}."
            )
    elif kind == "Task":
        mode = state.get("TaskMode")
        if mode not in NEW_ALLOWED_MODES:
            raise ExpressLimitError(f"{where}: TaskMode {mode} is not available in Express flows; use RequestComplete.")


def _old_steps(steps: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        where = f"{path}[{i}] ({step.get('name')})"
        yield where, step
        yield from _old_steps(step.get("steps"), f"{where}.steps")
        for key in ("branches", "choices"):
            items = step.get(key)
            if isinstance(items, list):
                for b, item in enumerate(items):
                    if isinstance(item, dict):
                        yield from _old_steps(item.get("steps"), f"{where}.{key}[{b}].steps")
        default = step.get("default")
        if isinstance(default, dict):
            yield from _old_steps(default.get("steps"), f"{where}.default.steps")


def _check_old_step(where: str, step: dict[str, Any]) -> None:
    kind = step.get("type")
    if kind == "wait":
        seconds = _int(step.get("duration"))
        if seconds is not None and not WAIT_MIN_SECONDS <= seconds <= WAIT_MAX_SECONDS:
            raise ExpressLimitError(
                f"{where}: a wait step of an Express flow waits {WAIT_MIN_SECONDS} to {WAIT_MAX_SECONDS} seconds, not {seconds}."
            )
    elif kind == "task":
        pattern = step.get("pattern")
        if pattern not in OLD_ALLOWED_PATTERNS:
            raise ExpressLimitError(f"{where}: pattern {pattern} is not available in Express flows; use requestResponse.")
