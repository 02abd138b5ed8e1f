"""Stored forms: history chunks round-trip, compressed, and older plain-JSON chunks still read."""
from __future__ import annotations

import json

from common.interpreter import HistoryEvent
from common.records import decode_history, encode_history_chunk


def _events(n: int) -> list[HistoryEvent]:
    return [HistoryEvent(i, i - 1, "StepEntered", f"step{i}", 1_700_000_000_000 + i, {"input": {"k": i}}) for i in range(1, n + 1)]


def test_history_chunks_round_trip_and_are_compressed() -> None:
    events = _events(42)
    chunk = encode_history_chunk(events)
    assert decode_history([chunk]) == events
    plain = json.dumps([e.to_json() for e in events], separators=(",", ":")).encode()
    assert len(chunk) * 3 < len(plain)
    assert encode_history_chunk([]) == b""


def test_plain_json_chunks_still_decode() -> None:
    events = _events(3)
    plain = json.dumps([e.to_json() for e in events])
    assert decode_history([plain, plain.encode(), encode_history_chunk(_events(1))]) == events + events + _events(1)
