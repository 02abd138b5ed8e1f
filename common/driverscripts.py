"""A driver's two steps on an execution's keys: taking the lease and reading (plain commands,
queue_acquire and read_acquired), and writing the drive back (commit.lua, header in common/lua;
Commit builds its ARGV), so no caller counts positions.

Taking the lease needs no script (issue 17: on the bundled Redis 6.2 a Lua call that returns data
costs about three times the same commands sent plainly). It is three commands on the execution's
slot, run in order on one connection: `SET lease token NX PX lease_ms` (the lease, or nothing if
another driver holds it), then `HMGET record RECORD_FIELDS` and `LRANGE inbox 0 -1`.

Atomicity is not needed: what the lease holder reads can change between the steps only through
appends (read now, or counted as `left` by its commit) and reopen.lua, which deletes the lease and
so fences this drive's commit. The record's `dq` mark (a drive is queued, append.lua) is left alone
here and cleared by the commit (commit.lua): an event that arrives while the lease is held does not
publish a drive, since the holder's commit counts it and the holder goes round again. A lease taken
for an execution that does not exist (its record is missing) is a stray: the driver lets go of it
at once (Driver.drive_many). Should that execution's claim land in the moment between, a drive of
it that meets the stray lease gives way as to any holder, and the start's own wake-up (written
before the claim) re-drives it after wake_after_ms: a delay in a rare race, never a loss."""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common import keys
from common.records import as_str
from common.scripts import Scripts

# The record fields a driver reads (HMGET), in its reply's order.
RECORD_FIELDS = ("status", "state", "defid", "flow", "acct", "cb", "hseq", "tp")  # (the name is the tag's)
NO_EXECUTION, HELD = "-1", "0"  # the token when the acquire took no lease
ACQUIRE_REPLIES = 3  # the replies queue_acquire's commands add to a pipeline's results


def new_fence() -> str:
    """A fencing token for one acquire: 64 random bits, never NO_EXECUTION or HELD."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Acquired:
    """An acquire's answer: the lease's fencing token and what the drive reads, or why there is no lease."""

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
    stray: bool = False  # NO_EXECUTION, yet the lease was taken: the caller deletes keys.lease(tag)

    @property
    def leased(self) -> bool:
        """Whether this driver holds the lease (and the fields are read)."""
        return self.token not in (NO_EXECUTION, HELD)


def read_acquired(replies: Sequence[Any], token: str, tag: str) -> Acquired:
    """The ACQUIRE_REPLIES replies of queue_acquire's commands for execution `tag` (queued with fencing token
    `token`) as an Acquired."""
    taken, record, inbox = replies
    status, state, def_id, flow, account, callback, hseq, traceparent = (as_str(v) for v in record)
    name = keys.split_tag(tag)[1]
    if not status:  # every record has a status (claim.lua writes it first): a missing one means no execution
        return Acquired(NO_EXECUTION, stray=bool(taken))
    if not taken:
        return Acquired(HELD)
    events = tuple(as_str(e) for e in inbox)
    return Acquired(token, status, state, def_id, flow, name, account, callback, int(hseq or 0), traceparent, events)


def queue_acquire(pipe: Any, tag: str, lease_ms: int, token: str) -> None:
    """Queue the ACQUIRE_REPLIES commands that take the lease of one execution with fencing token `token`
    (new_fence()) and read it (the module's docstring); their replies: read_acquired."""
    pipe.set(keys.lease(tag), token, nx=True, px=lease_ms)
    pipe.hmget(keys.execution(tag), RECORD_FIELDS)
    pipe.lrange(keys.inbox(tag), 0, -1)


def acquire_sync(client: Any, tag: str, lease_ms: int, token: str) -> Acquired:
    """One acquire on its own (a sync client): the lease taken with `token` and the execution read. A stray
    lease (the execution does not exist) is let go at once."""
    pipe = client.pipeline(transaction=False)
    queue_acquire(pipe, tag, lease_ms, token)
    got = read_acquired(pipe.execute(), token, tag)
    if got.stray:
        client.delete(keys.lease(tag))
    return got


@dataclass(frozen=True)
class Commit:
    """commit.lua's ARGV: one drive's result, written if the fencing token still holds the lease."""

    tag: str
    token: str  # the acquire's fencing token
    consumed: int  # inbox events the drive read (removed from the head)
    state: str  # the new interpreter state (JSON)
    history_chunk: bytes | str  # the new events (records.encode_history_chunk), empty for none
    hseq: int  # history length after this chunk
    ttl_seconds: int  # retention if the execution ended (its keys then expire), else 0
    fields: tuple[str, ...] = ()  # more field, value pairs for the record (status, output, stopped, error, cause)
    tasks: bool = True  # the execution may have a tasks or children hash (it ran an activity): the end sees to them

    def argv(self) -> list[Any]:
        """ARGV[1..] in commit.lua's order."""
        head = [self.token, self.consumed, self.state, self.history_chunk, self.hseq, self.ttl_seconds, keys.DONE_CHANNEL, self.tag]
        return [*head, *self.fields]


def queue_commit(scripts: Scripts, pipe: Any, commit: Commit) -> None:
    """Queue commit.lua (its answer: -1 if the lease was lost, else the inbox events left); at the end
    of an execution that ran activities (commit.tasks) it deletes the children hash (KEYS[5]) and gives
    the tasks hash the retention (KEYS[6]). Others pass neither: each key and call costs redis-server
    about 1% of an execution's work (bench/rediscost.py)."""
    tag = commit.tag
    more = [keys.children(tag), keys.tasks(tag)] if commit.tasks else []
    scripts.queue(pipe, "commit", [*keys.execution_keys(tag), *more], commit.argv())
