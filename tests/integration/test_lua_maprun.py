"""The MapRun scripts on a real redis-server: fenced commits, exact counts, children counted once (issue 16)."""
from __future__ import annotations

import json

import redis

from common import keys
from common.mapruns import counts, describe_view
from common.records import decode_hash
from common.scripts import Scripts

TAG = "fid/0123456789abcdef0123456789abcdef"
K = keys.maprun_keys(TAG)  # record, inbox, lease, running
END_KEYS = [K[0], K[1], K[3]]


def _record(r: redis.Redis) -> dict[str, str]:
    return decode_hash(r.hgetall(K[0]))


def _start(r: redis.Redis, status: str = "Running", total: int = 10) -> None:
    r.hset(K[0], mapping={"name": "run", "pname": "p", "status": status, "total": total, "running": 0, "kids": 0,
                          "succeeded": 0, "failed": 0, "aborted": 0, "conc": 3, "tcount": "", "tpct": "", "started": 1000})  # fmt: skip


def test_acquire_takes_the_lease_once_and_reads_record_and_inbox(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.maprun_acquire(keys=K[:3], args=[5000]) == [-1]
    _start(r)
    r.rpush(K[1], "e1")
    r.hset(K[0], "dq", "123")
    token, rec, inbox = s.maprun_acquire(keys=K[:3], args=[5000])
    assert int(token) == 1 and inbox == [b"e1"] and b"dq" not in rec
    assert s.maprun_acquire(keys=K[:3], args=[5000]) == [0]


def test_commit_is_fenced_and_counts_started_children_once(r: redis.Redis) -> None:
    s = Scripts(r)
    _start(r)
    r.rpush(K[1], "e1", "e2")
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]
    assert s.maprun_commit(keys=K, args=[int(token) + 1, 2, 1, 0, "pos", "9"]) == -1  # a stale driver writes nothing
    assert r.llen(K[1]) == 2 and _record(r).get("pos") is None
    # reserve two children (3 items and 1 item), keep the lease, consume nothing
    assert s.maprun_commit(keys=K, args=[token, 0, 0, 1, "pos", "4", 0, 3, 1, 1]) == 2
    rec = _record(r)
    assert (rec["running"], rec["kids"], rec["pos"]) == ("4", "2", "4")
    assert counts(rec) == {"Total": 10, "Pending": 6, "Running": 4, "Succeed": 0, "Failed": 0, "Aborted": 0}
    # the same children again (a crash after the reservation): not counted twice; consume and release
    assert s.maprun_commit(keys=K, args=[token, 2, 1, 0, 0, 3, 1, 1]) == 0
    assert _record(r)["running"] == "4" and r.exists(K[2]) == 0 and r.llen(K[1]) == 0


def test_child_end_moves_its_items_exactly_once_and_wakes_the_run(r: redis.Redis) -> None:
    s = Scripts(r)
    _start(r)
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]
    s.maprun_commit(keys=K, args=[token, 0, 1, 0, 0, 3, 1, 1, 2, 2, 3, 1])
    assert s.maprun_child_end(keys=END_KEYS, args=[10_000, 5000, 0, "Succeeded"]) == [1, 1]  # publish a drive
    assert s.maprun_child_end(keys=END_KEYS, args=[10_001, 5000, 0, "Succeeded"]) == [0, 0]  # counted already
    assert s.maprun_child_end(keys=END_KEYS, args=[10_002, 5000, 1, "TimedOut"]) == [1, 0]  # a drive is queued
    assert s.maprun_child_end(keys=END_KEYS, args=[20_000, 5000, 2, "Stopped", 3, "Succeeded", 0, "Failed"]) == [2, 1]  # stale mark
    rec = _record(r)
    assert counts(rec) == {"Total": 10, "Pending": 3, "Running": 0, "Succeed": 4, "Failed": 3, "Aborted": 0}
    assert [json.loads(e) for e in r.lrange(K[1], 0, -1)] == [{"t": "ChildEnded", "n": 1}, {"t": "ChildEnded", "n": 1}, {"t": "ChildEnded", "n": 2}]


def test_a_child_stopped_after_the_run_ended_is_aborted(r: redis.Redis) -> None:
    s = Scripts(r)
    _start(r)
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]
    s.maprun_commit(keys=K, args=[token, 0, 1, 1, "status", "Aborted", 0, 2])
    assert s.maprun_child_end(keys=END_KEYS, args=[1, 5000, 0, "Stopped"]) == [1, 0]
    rec = _record(r)
    assert (rec["aborted"], rec["running"], r.llen(K[1])) == ("2", "0", 0)
    assert describe_view(rec)["ItemCounts"]["Aborted"] == 2


def test_update_changes_a_running_run_and_refuses_an_ended_one(r: redis.Redis) -> None:
    s = Scripts(r)
    ev = json.dumps({"t": "Updated"})
    assert s.maprun_update(keys=K[:2], args=[ev, 1, 5000, "conc", "7"]) == [-1]
    _start(r)
    assert s.maprun_update(keys=K[:2], args=[ev, 1, 5000, "conc", "7", "tpct", "12.5"]) == [1, 1, b"7", b"", b"12.5"]
    assert s.maprun_update(keys=K[:2], args=[ev, 2, 5000, "tcount", "2"]) == [1, 0, b"7", b"2", b"12.5"]
    r.hset(K[0], "status", "Succeeded")
    assert s.maprun_update(keys=K[:2], args=[ev, 3, 5000, "conc", "9"]) == [0, b"Succeeded"]
    assert _record(r)["conc"] == "7" and r.llen(K[1]) == 2


def test_child_ends_ask_for_a_drive_once_an_eighth_of_the_concurrency_ended(r: redis.Redis) -> None:
    s = Scripts(r)
    _start(r)
    r.hset(K[0], "conc", 16)  # a drive per 2 ends
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]
    s.maprun_commit(keys=K, args=[token, 0, 1, 0, 0, 1, 1, 1, 2, 1])
    assert s.maprun_child_end(keys=END_KEYS, args=[10_000, 5000, 0, "Succeeded"]) == [1, 2]  # wait for more
    assert s.maprun_child_end(keys=END_KEYS, args=[10_001, 5000, 1, "Succeeded"]) == [1, 1]  # two: drive it
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]  # a drive began: the count starts again
    s.maprun_commit(keys=K, args=[token, 2, 1, 0])
    assert s.maprun_child_end(keys=END_KEYS, args=[10_002, 5000, 2, "Failed"]) == [1, 1]  # the last child running



def test_a_redrive_reaches_an_ended_run_and_its_last_stopping_child_drives_it(r: redis.Redis) -> None:
    s = Scripts(r)
    _start(r)
    token = s.maprun_acquire(keys=K[:3], args=[5000])[0]
    s.maprun_commit(keys=K, args=[token, 0, 1, 1, "status", "Failed", 0, 1, 1, 1])  # two children still stopping
    r.rpush(K[1], "e")
    for key in (K[0], K[1], K[3]):
        r.expire(key, 100)  # the retention TTL an ended run gets
    assert s.maprun_update(keys=K[:2], args=[json.dumps({"t": "Updated"}), 1, 5000, "conc", "9"]) == [0, b"Failed"]
    redrive = json.dumps({"t": "Redrive", "aid": "9/1", "token": "tk"})
    run_keys = [K[0], K[1], keys.maprun_children(TAG), K[3]]
    assert s.maprun_update(keys=run_keys, args=[redrive, 2, 5000, "aid", "9/1", "rq", "1"])[:2] == [1, 1]
    assert (r.ttl(K[0]), r.ttl(K[1]), r.ttl(K[3])) == (-1, -1, -1)  # the retention TTL is undone
    rec = _record(r)
    assert (rec["aid"], rec["rq"], rec["status"], json.loads(r.lrange(K[1], -1, -1)[0])) == ("9/1", "1", "Failed", json.loads(redrive))
    r.hdel(K[0], "dq")
    assert s.maprun_child_end(keys=END_KEYS, args=[10_000, 5000, 0, "Stopped"]) == [1, 0]  # one still stopping: wait
    assert s.maprun_child_end(keys=END_KEYS, args=[10_001, 5000, 1, "Stopped"]) == [1, 1]  # the last one: drive the run
    rec = _record(r)
    assert (rec["aborted"], rec["running"], rec["kids"]) == ("2", "0", "0")  # aborted, as the run that stopped them saw them
