"""Stored forms: history chunks round-trip, compressed, and older plain-JSON chunks still read."""
from __future__ import annotations

import json
from typing import Any

import pytest

from common.interpreter import HistoryEvent
from common.records import as_str, decode_history, encode_history_chunk, new_execution_fields


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


@pytest.mark.parametrize(
    ("reply", "text"),
    [(b"Running", "Running"), ("Running", "Running"), ("é".encode(), "é"), (None, ""), (False, ""), (b"", ""), (12, "12"), (0, "0")],
)
def test_as_str_reads_a_redis_reply_value_as_text(reply: object, text: str) -> None:
    """None (a missing field) and False (Lua's nil inside a reply) read as empty text; 0 stays "0"."""
    assert as_str(reply) == text


def test_a_new_record_writes_optional_fields_only_when_set() -> None:
    base: dict[str, Any] = {"account": "1", "flow": "f", "raw_input": "{}", "def_id": "d", "started": 1}
    fields = new_execution_fields(**base, qualifier="", callback="")
    bare = dict(zip(fields[::2], fields[1::2], strict=True))
    assert not {"qual", "ver", "cb", "tp", "depth"} & set(bare)  # read back as '' (HMGET's nil): fewer values for claim.lua
    # neither the name nor the flow id (the key holds them), nor the history length before the first commit (0)
    assert set(bare) == {"acct", "flow", "status", "input", "defid", "started"} and bare["status"] == "Running"
    fields = new_execution_fields(**base, qualifier="prod", callback="tok", version="3", depth=2)
    full = dict(zip(fields[::2], fields[1::2], strict=True))
    assert (full["qual"], full["ver"], full["cb"], full["depth"]) == ("prod", "3", "tok", "2")
