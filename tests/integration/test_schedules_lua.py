"""put_schedule.lua and arm_schedule.lua (and the ZADD LT the schedule writers rely on) on a real redis-server."""
from __future__ import annotations

import pytest
import redis

from common import keys
from common.records import decode_pairs
from common.scripts import Scripts

ACCT, FLOW, FLOW_ID = "acct", "f", "flow-id-1"
SKEYS = [keys.flow(ACCT, FLOW), keys.schedule(ACCT, FLOW_ID, "s1"), keys.schedule_index(ACCT, FLOW_ID)]


@pytest.fixture
def rr(r: redis.Redis) -> redis.Redis:
    """A sync client on an empty database of the session's redis-server (Redis 6.2 by default;
    .ci/run runs this module again on the machine's Redis 7 through OPENFNF_TEST_REDIS_BINARY)."""
    return r


def _flow(r: redis.Redis, flow_id: str = FLOW_ID) -> None:
    r.hset(SKEYS[0], mapping={"Id": flow_id, "Name": FLOW})


def _put(s: Scripts, mode: str, fields: dict[str, str], rev: str = "", flow_id: str = FLOW_ID) -> list[object]:
    pairs = [x for kv in fields.items() for x in kv]
    return s.put_schedule(keys=SKEYS, args=[mode, flow_id, "s1", rev, *pairs])


def test_put_schedule_checks_the_flow_then_creates_once(rr: redis.Redis) -> None:
    s = Scripts(rr)
    assert _put(s, "create", {"Enable": "1"}) == [b"error", b"flow"]
    _flow(rr)
    assert _put(s, "create", {"Enable": "1"}, flow_id="another-id") == [b"error", b"flow"]  # deleted and created again
    status, record = _put(s, "create", {"ScheduleName": "s1", "Enable": "1", "next": "5000"})
    assert status == b"ok"
    assert decode_pairs(record) == {"ScheduleName": "s1", "Enable": "1", "next": "5000", "rev": "1"}
    assert rr.zrange(SKEYS[2], 0, -1) == [b"s1"]
    assert _put(s, "create", {"Enable": "0"}) == [b"error", b"exists"]
    assert rr.hget(SKEYS[1], "Enable") == b"1"  # the refused create changed nothing


def test_put_schedule_updates_only_the_revision_it_read(rr: redis.Redis) -> None:
    s = Scripts(rr)
    _flow(rr)
    assert _put(s, "update", {"Enable": "0"}, rev="1") == [b"error", b"missing"]
    _put(s, "create", {"ScheduleName": "s1", "Description": "a", "Enable": "1"})
    assert _put(s, "update", {"Description": "b"}, rev="7") == [b"error", b"conflict"]
    status, record = _put(s, "update", {"Description": "b"}, rev="1")
    assert status == b"ok" and decode_pairs(record) == {"ScheduleName": "s1", "Description": "b", "Enable": "1", "rev": "2"}
    assert _put(s, "update", {"Description": "c"}, rev="1") == [b"error", b"conflict"]  # a second writer of rev 1 loses


def test_arm_schedule_moves_next_only_from_the_tick_that_fired(rr: redis.Redis) -> None:
    s = Scripts(rr)
    skey = SKEYS[1]
    assert s.arm_schedule(keys=[skey], args=[1000, 2000]) == [-1]
    rr.hset(skey, mapping={"next": "1000", "Enable": "1"})
    assert s.arm_schedule(keys=[skey], args=[900, 2000]) == [0, b"1000", b"1"]  # changed meanwhile: untouched
    assert rr.hget(skey, "next") == b"1000"
    assert s.arm_schedule(keys=[skey], args=[1000, 2000]) == [1, b"2000"]
    assert rr.hget(skey, "next") == b"2000"
    rr.hset(skey, mapping={"Enable": "0", "next": ""})
    assert s.arm_schedule(keys=[skey], args=[2000, 3000]) == [0, b"", b"0"]  # disabled: not armed


def test_zadd_lt_only_lowers_and_adds_new_members(rr: redis.Redis) -> None:
    rr.zadd(keys.schedules_due(0, 1), {"m": 5000}, lt=True)
    assert rr.zscore(keys.schedules_due(0, 1), "m") == 5000
    rr.zadd(keys.schedules_due(0, 1), {"m": 9000}, lt=True)
    assert rr.zscore(keys.schedules_due(0, 1), "m") == 5000
    rr.zadd(keys.schedules_due(0, 1), {"m": 1000}, lt=True)
    assert rr.zscore(keys.schedules_due(0, 1), "m") == 1000


def test_claim_due_and_release_if_on_the_schedule_zset(rr: redis.Redis) -> None:
    s = Scripts(rr)
    rr.zadd(keys.schedules_due(0, 1), {"a": 1000, "b": 5000})
    claimed = s.claim_due(keys=[keys.schedules_due(0, 1)], args=[2000, 10, 30000])
    assert claimed == [b"a", b"32000"]
    assert s.claim_due(keys=[keys.schedules_due(0, 1)], args=[2000, 10, 30000]) == []  # a second process gets nothing
    rr.zadd(keys.schedules_due(0, 1), {"a": 1500}, lt=True)  # an API write re-armed it meanwhile
    assert s.release_if(keys=[keys.schedules_due(0, 1)], args=["a", 32000]) == 0
    assert rr.zscore(keys.schedules_due(0, 1), "a") == 1500
