"""The Python side of acquire.lua and commit.lua (headers in common/lua): one typed reader of acquire's
reply and one builder of commit's ARGV, so no caller counts positions."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from common import keys
from common.records import as_str
from common.scripts import Scripts

# The record fields acquire.lua reads (HMGET), in its reply's order.
RECORD_FIELDS = ("status", "state", "defid", "flow", "name", "acct", "cb", "hseq", "tp")
NO_EXECUTION, HELD = "-1", "0"  # acquire.lua's token when it took no lease


def new_fence() -> str:
    """A fencing token for one acquire.lua call: 64 random bits, never NO_EXECUTION or HELD."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Acquired:
    """acquire.lua's reply: the lease's fencing token and what the drive reads, or why there is no lease."""

    token: str  # NO_EXECUTION, HELD (another driver has the lease), else the fencing token (new_fence)
    status: str = ""
    state: str = ""  # the interpreter state (JSON), "" before the first drive
    def_id: str = ""
    flow: str = ""  # flow name
    name: str = ""  # execution name
    account: str = ""
    callback: str = ""  # the parent's callback, "" for a root execution
    hseq: int = 0  # history events so far
    traceparent: str = ""  # the trace its drives continue (common/tracing.py), "" when tracing was off
    inbox: tuple[str, ...] = ()  # events, oldest first (JSON)

    @property
    def leased(self) -> bool:
        """Whether this driver holds the lease (and the fields are read)."""
        return self.token not in (NO_EXECUTION, HELD)


def read_acquired(reply: list[Any]) -> Acquired:
    """acquire.lua's reply ({-1}, {0} or {token, {fields...}, {events...}}) as an Acquired."""
    token = as_str(reply[0])
    if token in (NO_EXECUTION, HELD):
        return Acquired(token)
    status, state, def_id, flow, name, account, callback, hseq, traceparent = (as_str(v) for v in reply[1])
    inbox = tuple(as_str(e) for e in reply[2])
    return Acquired(token, status, state, def_id, flow, name, account, callback, int(hseq or 0), traceparent, inbox)


def queue_acquire(scripts: Scripts, pipe: Any, tag: str, lease_ms: int, token: str = "") -> None:
    """Queue acquire.lua for one execution with a fencing token (a fresh new_fence() unless given; its
    answer: read_acquired)."""
    scripts.queue(pipe, "acquire", keys.execution_keys(tag), [lease_ms, token or new_fence()])


@dataclass(frozen=True)
class Commit:
    """commit.lua's ARGV: one drive's result, written if the fencing token still holds the lease."""

    tag: str
    token: str
    consumed: int  # inbox events the drive read (removed from the head)
    state: str  # the new interpreter state (JSON)
    history_chunk: bytes | str  # the new events (records.encode_history_chunk), empty for none
    hseq: int  # history length after this chunk
    ttl_seconds: int  # retention if the execution ended (its keys then expire), else 0
    fields: tuple[str, ...] = ()  # more field, value pairs for the record (status, output, stopped, error, cause)

    def argv(self) -> list[Any]:
        """ARGV[1..] in commit.lua's order."""
        head = [self.token, self.consumed, self.state, self.history_chunk, self.hseq, self.ttl_seconds, keys.DONE_CHANNEL, self.tag]
        return [*head, *self.fields]


def queue_commit(scripts: Scripts, pipe: Any, commit: Commit) -> None:
    """Queue commit.lua (its answer: -1 if the lease was lost, else the inbox events left); at the end
    it deletes the execution's children hash too (KEYS[5])."""
    scripts.queue(pipe, "commit", [*keys.execution_keys(commit.tag), keys.children(commit.tag)], commit.argv())
