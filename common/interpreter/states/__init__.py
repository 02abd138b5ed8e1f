"""One module per kind of state; each has enter() (run it) and resume() (a result it waited for arrived)."""
from __future__ import annotations

from typing import Any

from common.fdl.model import StateDef
from common.interpreter.states import choice, dmap, fanout, simple, task, wait

_HANDLERS: dict[str, Any] = {
    "pass": simple,
    "succeed": simple,
    "fail": simple,
    "wait": wait,
    "choice": choice,
    "task": task,
    "parallel": fanout,
    "map": fanout,
    "foreach": fanout,
    "dmap": dmap,
}


def handler(state: StateDef) -> Any:
    """The module that runs this kind of state."""
    return _HANDLERS[state.type]


__all__ = ["choice", "dmap", "fanout", "handler", "simple", "task", "wait"]
