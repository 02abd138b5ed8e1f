"""put_schedule.lua and arm_schedule.lua (and the ZADD LT the schedule writers rely on) on real Redis 6.2 and 7."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from common import keys
from common.records import decode_pairs
from common.scripts import Scripts
from openfnf.redisserver import free_port

ACCT, FLOW, FLOW_ID = "acct", "f", "flow-id-1"
SKEYS = [keys.flow(ACCT, FLOW), keys.schedule(ACCT, FLOW_ID, "s1"), keys.schedule_index(ACCT, FLOW_ID)]


def _redis7_binary() -> str:
    """A redis-server 7.x: OPENFNF_TEST_REDIS7_BINARY, else the one on PATH (fails, never skips, if none is 7.x)."""
    import os

    path = os.environ.get("OPENFNF_TEST_REDIS7_BINARY") or shutil.which("redis-server")
    assert path, "no redis-server 7.x on PATH; set OPENFNF_TEST_REDIS7_BINARY"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\d+)\.", out)
    assert match and int(match.group(1)) >= 7, f"{path} is not Redis 7.x: {out.strip()}; set OPENFNF_TEST_REDIS7_BINARY"
    return path


@pytest.fixture(scope="module")
def redis7_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis 7 server of this module (the session fixture runs the bundled 6.2)."""
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis7")
    proc = subprocess.Popen(
        [_redis7_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 30
    while True:
        try:
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                break
        except (redis.RedisError, OSError):
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server 7 did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["6.2", "7"])
def rr(request: pytest.FixtureRequest, redis_server: str) -> Iterator[redis.Redis]:
    """A sync client on an empty database of Redis 6.2 (session fixture) and of Redis 7."""
    url = redis_server if request.param == "6.2" else request.getfixturevalue("redis7_url")
    client = redis.Redis.from_url(url)
    client.flushdb()
    version = client.info("server")["redis_version"]
    assert version.startswith("6.2") if request.param == "6.2" else int(version.split(".")[0]) >= 7
    yield client
    client.close()


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
    rr.zadd(keys.SCHEDULES_DUE, {"m": 5000}, lt=True)
    assert rr.zscore(keys.SCHEDULES_DUE, "m") == 5000
    rr.zadd(keys.SCHEDULES_DUE, {"m": 9000}, lt=True)
    assert rr.zscore(keys.SCHEDULES_DUE, "m") == 5000
    rr.zadd(keys.SCHEDULES_DUE, {"m": 1000}, lt=True)
    assert rr.zscore(keys.SCHEDULES_DUE, "m") == 1000


def test_claim_due_and_release_if_on_the_schedule_zset(rr: redis.Redis) -> None:
    s = Scripts(rr)
    rr.zadd(keys.SCHEDULES_DUE, {"a": 1000, "b": 5000})
    claimed = s.claim_due(keys=[keys.SCHEDULES_DUE], args=[2000, 10, 30000])
    assert claimed == [b"a", b"32000"]
    assert s.claim_due(keys=[keys.SCHEDULES_DUE], args=[2000, 10, 30000]) == []  # a second process gets nothing
    rr.zadd(keys.SCHEDULES_DUE, {"a": 1500}, lt=True)  # an API write re-armed it meanwhile
    assert s.release_if(keys=[keys.SCHEDULES_DUE], args=["a", 32000]) == 0
    assert rr.zscore(keys.SCHEDULES_DUE, "a") == 1500
