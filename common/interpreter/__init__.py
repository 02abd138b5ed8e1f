"""The deterministic core: advance(flow, state, events, now) -> Decision. No I/O, no clock, no randomness."""
from common.interpreter.engine import abort, advance
from common.interpreter.model import (
    DEFAULT_LIMITS,
    TERMINAL,
    CommandType,
    Decision,
    Errors,
    EventType,
    HistoryEvent,
    Limits,
    Status,
    default_token_for,
)

__all__ = [
    "DEFAULT_LIMITS",
    "TERMINAL",
    "CommandType",
    "Decision",
    "Errors",
    "EventType",
    "HistoryEvent",
    "Limits",
    "Status",
    "abort",
    "advance",
    "default_token_for",
]
