"""publish_version.lua, put_alias.lua, delete_version.lua, delete_flow.lua on a real redis-server."""
from __future__ import annotations

import json

import pytest
import redis

from common import keys
from common.scripts import Scripts

FK = keys.flow_keys("acct", "f")


def _flow(r: redis.Redis, def_id: str = "d1") -> None:
    r.hset(FK[0], mapping={"Name": "f", "DefId": def_id})
    r.zadd(FK[1], {"f": 0})


def test_publish_numbers_versions_and_snapshots_the_definition(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.publish_version(keys=FK, args=[1000, "no flow"]) == 0
    _flow(r, "d1")
    assert s.publish_version(keys=FK, args=[1000, "first"]) == 1
    r.hset(FK[0], "DefId", "d2")
    assert s.publish_version(keys=FK, args=[2000, "second"]) == 2
    v1, v2 = (json.loads(r.hget(FK[2], v)) for v in ("1", "2"))
    assert v1 == {"Version": "1", "Description": "first", "CreatedTime": "1000", "DefId": "d1"}
    assert v2["DefId"] == "d2"


def test_alias_create_update_and_version_checks(r: redis.Redis) -> None:
    s = Scripts(r)
    routes = {"Name": "live", "Description": "d", "RoutingConfigurations": [{"Version": "1", "Weight": 100}]}
    assert s.put_alias(keys=FK, args=["create", "live", json.dumps(routes), 5, "1"]) == [b"error", b"flow"]
    _flow(r)
    assert s.put_alias(keys=FK, args=["create", "live", json.dumps(routes), 5, "1"]) == [b"error", b"version:1"]
    s.publish_version(keys=FK, args=[1, ""])
    status, stored = s.put_alias(keys=FK, args=["create", "live", json.dumps(routes), 5, "1"])
    assert status == b"ok" and json.loads(stored)["CreatedTime"] == "5"
    assert s.put_alias(keys=FK, args=["create", "live", json.dumps(routes), 6, "1"]) == [b"error", b"exists"]
    assert s.put_alias(keys=FK, args=["update", "nope", json.dumps({"Name": "nope"}), 6, ""]) == [b"error", b"missing"]
    status, stored = s.put_alias(keys=FK, args=["update", "live", json.dumps({"Name": "live", "Description": "new"}), 9, ""])
    alias = json.loads(stored)
    assert alias["Description"] == "new" and alias["RoutingConfigurations"] == routes["RoutingConfigurations"]
    assert (alias["CreatedTime"], alias["LastModifiedTime"]) == ("5", "9")


def test_version_in_use_cannot_be_deleted(r: redis.Redis) -> None:
    s = Scripts(r)
    _flow(r)
    s.publish_version(keys=FK, args=[1, ""])
    s.publish_version(keys=FK, args=[1, ""])
    alias = {"Name": "a", "RoutingConfigurations": [{"Version": "1", "Weight": 60}, {"Version": "2", "Weight": 40}]}
    s.put_alias(keys=FK, args=["create", "a", json.dumps(alias), 1, "1", "2"])
    assert s.delete_version(keys=FK, args=["2"]) == [b"error", b"alias:a"]
    assert s.delete_version(keys=FK, args=["3"]) == [b"error", b"missing"]
    r.hdel(FK[3], "a")
    assert s.delete_version(keys=FK, args=["2"]) == [b"ok"]
    assert not r.hexists(FK[2], "2")


def test_delete_flow_removes_versions_and_aliases(r: redis.Redis) -> None:
    s = Scripts(r)
    _flow(r)
    s.publish_version(keys=FK, args=[1, ""])
    s.put_alias(keys=FK, args=["create", "a", json.dumps({"Name": "a", "RoutingConfigurations": []}), 1, ""])
    assert s.delete_flow(keys=FK, args=["f"]) == 1
    assert not any(r.exists(k) for k in FK)


@pytest.mark.parametrize("status", ["Succeeded", "Failed", "Stopped", "TimedOut", "Running"])
def test_claim_reports_the_holder_in_every_status(r: redis.Redis, status: str) -> None:
    s = Scripts(r)
    tag = keys.execution_tag("fid", "e")
    xk = keys.execution_keys(tag)
    s.claim(keys=xk[:2], args=["{}", 0, "status", status, "defid", "d"])
    got = s.claim(keys=xk[:2], args=["{}", 0, "status", "Running"])
    assert got[0] == 0 and got[1] == status.encode()
    assert r.hget(xk[0], "status") == status.encode()
