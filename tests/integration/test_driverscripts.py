"""common/driverscripts.py against a real redis-server: the acquire's replies read by field, commit.lua's
ARGV built by name and kept in step with the script's documented header."""
from __future__ import annotations

import re
from dataclasses import fields

import redis

from common import keys
from common.driverscripts import (
    ACQUIRE_REPLIES,
    HELD,
    NO_EXECUTION,
    RECORD_FIELDS,
    Acquired,
    Commit,
    new_fence,
    queue_acquire,
    queue_commit,
    read_acquired,
)
from common.scripts import Scripts, source

TAG = keys.execution_tag("flow-id-ds", "exec1")
RECORD = {
    "status": "Running", "state": '{"v":2}', "defid": "d1", "flow": "orders", "name": "stored-by-older-claims",
    "acct": "1234567890", "cb": "parent#3", "hseq": "7", "tp": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}  # fmt: skip


def acquire(s: Scripts, tag: str = TAG, token: str = "t1") -> Acquired:
    replies = s.pipeline_sync(lambda pipe: queue_acquire(pipe, tag, 5000, token))
    assert len(replies) == ACQUIRE_REPLIES
    return read_acquired(replies, token, tag)


def commit(s: Scripts, c: Commit) -> int:
    (left,) = s.pipeline_sync(lambda pipe: queue_commit(s, pipe, c))
    return int(left)


def test_acquire_reads_every_field_by_name(r: redis.Redis) -> None:
    s = Scripts(r)
    assert acquire(s) == Acquired(NO_EXECUTION, stray=True) and r.get(keys.lease(TAG)) == b"t1"  # the caller lets go of it
    assert acquire(s) == Acquired(NO_EXECUTION) and not acquire(s).leased  # held by the stray: not this one's to let go
    r.delete(keys.lease(TAG))
    r.hset(keys.execution(TAG), mapping=RECORD)
    r.rpush(keys.inbox(TAG), '{"t":"A"}', "{\"t\":\"\u00e9\"}".encode())
    got = acquire(s)
    assert got == Acquired(
        token="t1", status="Running", state='{"v":2}', def_id="d1", flow="orders", name="exec1",
        account="1234567890", callback="parent#3", hseq=7, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        inbox=('{"t":"A"}', '{"t":"é"}'),
    )  # fmt: skip
    assert got.leased
    assert acquire(s, token="t2") == Acquired(HELD)
    assert new_fence() != new_fence() and len(new_fence()) == 16 and new_fence() not in (HELD, NO_EXECUTION)


def test_missing_fields_read_as_empty_and_hseq_as_zero(r: redis.Redis) -> None:
    s = Scripts(r)
    r.hset(keys.execution(TAG), mapping={"status": "Running", "defid": "d1"})  # before the first drive
    got = acquire(s)
    assert (got.state, got.callback, got.account, got.hseq, got.traceparent, got.inbox) == ("", "", "", 0, "", ())


def test_commit_writes_by_name_and_is_fenced(r: redis.Redis) -> None:
    s = Scripts(r)
    r.hset(keys.execution(TAG), mapping=RECORD)
    r.rpush(keys.inbox(TAG), '{"t":"A"}', '{"t":"B"}')
    got = acquire(s)
    r.rpush(keys.inbox(TAG), '{"t":"Late"}')
    done = Commit(TAG, got.token, len(got.inbox), '{"v":3}', "chunk", got.hseq + 2, 3600, ("status", "Succeeded", "output", "{}"))
    sub = r.pubsub(ignore_subscribe_messages=True)
    r.hset(keys.execution(TAG), "watch", "1")  # someone long-polls it: the end is published on DONE_CHANNEL
    sub.subscribe(keys.DONE_CHANNEL)
    sub.get_message(timeout=1)
    assert commit(s, done) == 1  # the late event is left
    record = {k.decode(): v.decode() for k, v in r.hgetall(keys.execution(TAG)).items()}
    assert (record["state"], record["hseq"], record["status"], record["output"]) == ('{"v":3}', "9", "Succeeded", "{}")
    assert r.lrange(keys.inbox(TAG), 0, -1) == [b'{"t":"Late"}'] and r.lrange(keys.history(TAG), 0, -1) == [b"chunk"]
    assert 0 < r.ttl(keys.execution(TAG)) <= 3600 and not r.exists(keys.lease(TAG))
    message = sub.get_message(timeout=2)
    assert message is not None and message["data"] == TAG.encode()
    assert commit(s, done) == -1  # the lease is gone: a stale driver writes nothing
    assert r.hget(keys.execution(TAG), "hseq") == b"9"


def test_the_tasks_hash_expires_with_the_record_when_the_execution_ends(r: redis.Redis) -> None:
    """A callback task's mark (and a traced task's traceparent) outlive no execution: its tasks hash gets the
    record's retention at the end, and no expiry while the execution runs on."""
    s = Scripts(r)
    r.hset(keys.execution(TAG), mapping=RECORD)
    r.hset(keys.tasks(TAG), mapping={"3": "done", "tp:3": RECORD["tp"]})
    got = acquire(s)
    assert commit(s, Commit(TAG, got.token, 0, '{"v":3}', "chunk", got.hseq + 1, 0)) == 0  # runs on
    assert r.ttl(keys.tasks(TAG)) == -1
    got = acquire(s, token="t2")
    assert commit(s, Commit(TAG, got.token, 0, '{"v":4}', "chunk", got.hseq + 1, 3600, ("status", "Succeeded"))) == 0
    assert 0 < r.ttl(keys.tasks(TAG)) <= 3600 and r.ttl(keys.tasks(TAG)) >= r.ttl(keys.execution(TAG)) - 1
    assert r.hget(keys.tasks(TAG), "3") == b"done"  # a late report still finds the task completed


def test_the_acquire_reads_what_acquired_holds_and_the_builder_follows_the_commit_header(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    queue_acquire(pipe, TAG, 5000, "t1")
    sent = [tuple(c[0]) for c in pipe.command_stack]  # (the commands, not sent: what queue_acquire asks for)
    assert sent[1] == ("HMGET", keys.execution(TAG), *RECORD_FIELDS)
    assert [c[0] for c in sent] == ["SET", "HMGET", "LRANGE"] and len(sent) == ACQUIRE_REPLIES
    names = [f.name for f in fields(Acquired)]
    assert len(names) == 1 + len(RECORD_FIELDS) + 3  # token, one per record field, the name (the tag's), inbox, stray
    commit_lua = source("commit")
    documented = [int(n) for n in re.findall(r"^-- ARGV\[(\d+)\]", commit_lua, re.M)]
    argv = Commit("t", "tok", 2, "s", "h", 3, 4, ("status", "Running")).argv()
    assert documented == list(range(1, len(documented) + 1)) and "-- ARGV[9..] more field, value pairs" in commit_lua
    assert argv == ["tok", 2, "s", "h", 3, 4, keys.DONE_CHANNEL, "t", "status", "Running"]
    assert len(argv) - 2 == len(documented)
