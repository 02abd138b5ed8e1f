"""report.lua on a real redis-server: a token's report is delivered once, only to a waiting task."""
from __future__ import annotations

import json

import redis

from common import keys
from common.scripts import Scripts

TAG = keys.execution_tag("fid", "parent")
RK = [keys.execution(TAG), keys.inbox(TAG), keys.tasks(TAG)]
EVENT = json.dumps({"t": "TaskReported", "id": "5", "ok": True, "output": {}})


def test_report_delivers_once_to_a_waiting_task(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.report(keys=RK, args=["5", EVENT, ""]) == [-1]  # no execution
    r.hset(RK[0], mapping={"status": "Running", "acct": "A", "hseq": "12"})
    assert s.report(keys=RK, args=["5", EVENT, ""]) == [-2]  # the task never waited
    r.hset(RK[2], "5", "waiting")
    assert s.report(keys=RK, args=["5", EVENT, "B"]) == [-1]  # another account's token looks like a missing one
    assert s.report(keys=RK, args=["5", EVENT, "A"]) == [1, 12]
    assert r.lrange(RK[1], 0, -1) == [EVENT.encode()]
    assert s.report(keys=RK, args=["5", EVENT, "A"]) == [0]  # second report: TaskAlreadyCompleted
    assert s.report(keys=RK, args=["5", EVENT, ""]) == [0]
    assert r.llen(RK[1]) == 1


def test_report_to_an_ended_execution_is_already_completed(r: redis.Redis) -> None:
    s = Scripts(r)
    r.hset(RK[0], mapping={"status": "Stopped", "acct": "A"})
    r.hset(RK[2], "7", "waiting")
    assert s.report(keys=RK, args=["7", EVENT, ""]) == [0]
    assert r.llen(RK[1]) == 0 and r.hget(RK[2], "7") == b"done"
