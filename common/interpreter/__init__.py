"""The deterministic core: advance(flow, state, events, now) -> Decision. No I/O, no clock, no randomness."""
from common.interpreter.engine import advance
from common.interpreter.model import TERMINAL, Decision, EventType, HistoryEvent, Status

__all__ = ["TERMINAL", "Decision", "EventType", "HistoryEvent", "Status", "advance"]
