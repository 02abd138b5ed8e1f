"""reopen.lua (RedriveExecution, issue 18) against a real redis-server (the fixture's, never the shared 6379)."""
from __future__ import annotations

import json

import redis

from common import keys
from common.driverscripts import acquire_sync
from common.scripts import Scripts

TAG = keys.execution_tag("flow-id-1", "exec1")
XKEYS = keys.execution_keys(TAG)
RKEYS = [*XKEYS, keys.tasks(TAG)]
EVENT = json.dumps({"t": "Redriven"})


def _ended(s: Scripts, r: redis.Redis, status: str = "Failed") -> str:
    """A claimed execution driven to its end by commit.lua, with its retention TTL; the drive's token."""
    s.claim(keys=XKEYS[:2], args=[json.dumps({"t": "Started"}), 0, "status", "Running", "defid", "d1", "started", "1000"])
    token = acquire_sync(r, TAG, 5000, "t0").token
    r.hset(keys.tasks(TAG), "7", "done")
    fields = ["status", status, "stopped", "2000", "error", "E", "cause", "C"]
    assert s.commit(keys=XKEYS, args=[token, 1, json.dumps({"status": status}, separators=(",", ":")), '[["e"]]', 2, 3600, keys.DONE_CHANNEL, TAG, *fields]) == 0
    return token


def test_reopen_undoes_the_retention_and_queues_the_event(r: redis.Redis) -> None:
    s = Scripts(r)
    _ended(s, r, "TimedOut")
    assert r.ttl(XKEYS[0]) > 0 and r.ttl(XKEYS[2]) > 0  # (the inbox is empty: no key)
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [1, 1]
    assert [r.ttl(k) for k in (*XKEYS[:3], keys.tasks(TAG))] == [-1, -1, -1, -1]  # kept for as long as it runs
    rec = r.hgetall(XKEYS[0])
    assert rec[b"status"] == b"Running" and rec[b"redrives"] == b"1" and rec[b"dq"] == b"5000"
    assert b"stopped" not in rec and b"error" not in rec and b"cause" not in rec
    assert [json.loads(e) for e in r.lrange(XKEYS[1], 0, -1)] == [{"t": "Redriven", "n": 1}]  # the count added
    assert r.lrange(XKEYS[2], 0, -1) == [b'[["e"]]']  # the history is kept


def test_two_redrives_make_one(r: redis.Redis) -> None:
    s = Scripts(r)
    _ended(s, r)
    pipe = r.pipeline(transaction=False)
    for _ in range(5):
        s.queue(pipe, "reopen", RKEYS, [EVENT, 1000, 5000, 5000])
    answers = pipe.execute()
    assert answers[0] == [1, 1] and answers[1:] == [[0, b"Running"]] * 4
    assert r.llen(XKEYS[1]) == 1


def test_refusals_change_nothing(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [-1]  # never existed, or past its retention
    _ended(s, r, "Succeeded")
    before = r.hgetall(XKEYS[0])
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [0, b"Succeeded"]
    assert r.hgetall(XKEYS[0]) == before and r.ttl(XKEYS[0]) > 0 and r.llen(XKEYS[1]) == 0


def test_the_most_redrives_allowed(r: redis.Redis) -> None:
    s = Scripts(r)
    _ended(s, r, "Stopped")
    assert s.reopen(keys=RKEYS, args=[EVENT, 1, 5000, 5000]) == [1, 1]
    r.hset(XKEYS[0], "status", "Failed")  # ended again
    assert s.reopen(keys=RKEYS, args=[EVENT, 1, 5000, 5000]) == [-2, 1]
    assert r.hget(XKEYS[0], "status") == b"Failed"
    assert s.reopen(keys=RKEYS, args=[EVENT, 2, 5000, 5000]) == [1, 2]


def test_a_drive_holding_the_ended_execution_loses_its_fence(r: redis.Redis) -> None:
    s = Scripts(r)
    _ended(s, r)
    token = acquire_sync(r, TAG, 5000, "t1").token  # e.g. the safety net drives the ended execution
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [1, 1]
    # its commit would put the TTL back and the ended state over the reopened one: it is fenced out
    fields = ["status", "Failed"]
    assert s.commit(keys=XKEYS, args=[token, 0, '{"status":"Failed"}', "", 2, 3600, keys.DONE_CHANNEL, TAG, *fields]) == -1
    assert r.hget(XKEYS[0], "status") == b"Running" and r.ttl(XKEYS[0]) == -1
    assert acquire_sync(r, TAG, 5000, "t2").token == "t2"  # the next drive takes it and reads the Redriven event


def test_a_full_history_is_refused(r: redis.Redis) -> None:
    s = Scripts(r)
    _ended(s, r)
    r.hset(XKEYS[0], "hseq", 4998)  # 4,998 events of at most 5,000: no room for ExecutionRedriven and a step
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [-3, 4998]
    assert r.hget(XKEYS[0], "status") == b"Failed" and r.llen(XKEYS[1]) == 0
    r.hset(XKEYS[0], "hseq", 4997)
    assert s.reopen(keys=RKEYS, args=[EVENT, 1000, 5000, 5000]) == [1, 1]
