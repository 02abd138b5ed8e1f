"""Admission in one round trip (api/admission.py) through the real app on the fixture's redis-server.

The nonce, the policy, the limiter and StartExecution's flow read share one pipeline; each check
still answers as DESIGN.md orders them, and a request refused at one step is not counted later.
Two apps on one Redis stand for two front doors: what one changes, the other's next start sees.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from common import keys, runcount
from common.settings import Settings
from common.throttle_rules import Rule, Scope
from common.throttle_rules import encode as encode_rule
from tests.frontdoor import (
    ACCOUNT_A,
    FORM_HEADERS,
    PASS_FLOW,
    check_error,
    signed_request,
)
from tests.integration.test_front_door_protocol import make_settings
from tests.integration.test_start_roundtrips import Counting

SLOW = 0.001  # requests per second: no refill during a test


async def post(client: TestClient, action: str, body: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any, str]:
    path, form = signed_request(action, body, **kw)
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    return resp.status, resp.headers, await resp.text()


async def ok(client: TestClient, action: str, body: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    status, _, text = await post(client, action, body, **kw)
    assert status == 200, text
    return dict(json.loads(text))


def definition(name: str, state: str = "A") -> str:
    return PASS_FLOW.format(name=name).replace("Name: A", f"Name: {state}").replace("StartAt: A", f"StartAt: {state}")


@pytest.fixture
async def doors(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> tuple[TestClient, TestClient]:
    """Two front doors on one Redis (rules re-read every 20 ms); their Pass flows run on workers, as any flow."""
    first = await aiohttp_client(make_app(make_settings(redis_server, tmp_path, throttle_refresh_ms=20, pure_at_start_events=0)))
    second = await aiohttp_client(make_app(make_settings(redis_server, tmp_path, throttle_refresh_ms=20, pure_at_start_events=0)))
    return first, second


async def test_a_whole_start_is_admission_claim_and_hand_off(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    # No background rule refresh during the count (it would be one more command).
    # Its Pass flow goes to the workers, as any flow (tests/integration/test_start_roundtrips.py counts a pure start).
    client = await aiohttp_client(make_app(make_settings(redis_server, tmp_path, throttle_refresh_ms=600_000, pure_at_start_events=0)))
    await ok(client, "CreateFlow", {"Name": "rt", "Definition": definition("rt"), "Type": "FDL"})
    await ok(client, "StartExecution", {"FlowName": "rt", "ExecutionName": "warm"})  # scripts, definition cache
    with Counting() as counted:  # the running cap (on by default) is checked in the admission round trip
        await ok(client, "StartExecution", {"FlowName": "rt", "ExecutionName": "counted"})
    sent = [bytes(c) if isinstance(c, bytes) else b"".join(bytes(part) for part in c) for c in counted.commands]
    assert counted.sent == 3, [s[:200] for s in sent]
    # nonce + the running cap (no rule: plain SET NX, and one MGET of the count's shards, no script) + flow
    assert b"EVALSHA" not in sent[0] and b"\r\nSET\r\n" in sent[0] and b"\r\nMGET\r\n" in sent[0] and b"HMGET" in sent[0]
    assert b"ZADD" in sent[1] and b"EVALSHA" in sent[1]  # the claim
    assert b"LPUSH" in sent[2]  # the drive


async def test_concurrent_starts_share_round_trips_and_each_gets_its_own_answer(doors: tuple[TestClient, TestClient]) -> None:
    client, _ = doors
    await ok(client, "CreateFlow", {"Name": "many", "Definition": definition("many"), "Type": "FDL"})
    await ok(client, "StartExecution", {"FlowName": "many", "ExecutionName": "warm"})
    with Counting() as counted:
        bodies = await asyncio.gather(*(ok(client, "StartExecution", {"FlowName": "many", "ExecutionName": f"e{i}"}) for i in range(20)))
    assert [b["Name"] for b in bodies] == [f"e{i}" for i in range(20)]
    assert counted.sent < 3 * 20  # requests that arrive together are batched into shared pipelines


async def test_update_and_delete_through_another_front_door_are_seen_by_the_next_start(doors: tuple[TestClient, TestClient]) -> None:
    first, second = doors
    await ok(first, "CreateFlow", {"Name": "moving", "Definition": definition("moving", "A"), "Type": "FDL"})
    started = await ok(first, "StartExecution", {"FlowName": "moving", "ExecutionName": "one"})
    assert "Name: A" in started["FlowDefinition"]
    await ok(second, "UpdateFlow", {"Name": "moving", "Definition": definition("moving", "B")})
    started = await ok(first, "StartExecution", {"FlowName": "moving", "ExecutionName": "two"})
    assert "Name: B" in started["FlowDefinition"] and "Name: A" not in started["FlowDefinition"]
    # Back to the first definition: its text is cached by content hash, and still right.
    await ok(second, "UpdateFlow", {"Name": "moving", "Definition": definition("moving", "A")})
    assert "Name: A" in (await ok(first, "StartExecution", {"FlowName": "moving", "ExecutionName": "three"}))["FlowDefinition"]
    await ok(second, "DeleteFlow", {"Name": "moving"})
    check_error(*await post(first, "StartExecution", {"FlowName": "moving", "ExecutionName": "four"}), "FlowNotExists", 404)
    # Created again under the same name: a new flow (new id), so "one" is free again.
    await ok(second, "CreateFlow", {"Name": "moving", "Definition": definition("moving", "C"), "Type": "FDL"})
    again = await ok(first, "StartExecution", {"FlowName": "moving", "ExecutionName": "one"})
    assert again["Status"] == "Running" and "Name: C" in again["FlowDefinition"]
    # Express now (another front door's CreateFlow): refused by StartExecution as before.
    await ok(second, "DeleteFlow", {"Name": "moving"})
    express = {"Name": "moving", "Definition": definition("moving"), "Type": "FDL", "ExecutionMode": "Express"}
    await ok(second, "CreateFlow", express)
    check_error(*await post(first, "StartExecution", {"FlowName": "moving"}), "ActionNotSupported", 400)


async def test_each_refusal_answers_as_before_and_charges_nothing_after_it(doors: tuple[TestClient, TestClient], r: Any) -> None:
    client, _ = doors
    await ok(client, "CreateFlow", {"Name": "orders-1", "Definition": definition("orders-1"), "Type": "FDL"})
    rule = Rule(action="StartExecution", rate=SLOW, burst=2, scope=Scope.ACCOUNT)
    r.hset(keys.THROTTLE_RULES, rule.id, encode_rule(rule))
    bucket = keys.gcra_bucket(ACCOUNT_A, Scope.ACCOUNT.value, "", "StartExecution")
    await _rules_seen(client, "orders-1", bucket, r)  # one start charged (of burst 2)
    charged = r.get(bucket)

    # A replayed nonce: SignatureNonceUsed, nothing charged, nothing claimed.
    path, form = signed_request("StartExecution", {"FlowName": "orders-1", "ExecutionName": "replayed"})
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    assert resp.status == 200, await resp.text()
    charged = r.get(bucket)
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNonceUsed", 400)
    assert r.get(bucket) == charged

    # A replayed nonce of a request the policy denies: still a replay first.
    denied_path, denied_form = signed_request("StartExecution", {"FlowName": "secret-1"}, key_id="AKORDERS")
    resp = await client.post(denied_path, data=denied_form, headers=FORM_HEADERS)
    check_error(resp.status, resp.headers, await resp.text(), "AccessDenied", 403)  # spends its nonce
    resp = await client.post(denied_path, data=denied_form, headers=FORM_HEADERS)
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNonceUsed", 400)
    assert r.get(bucket) == charged  # the denied request was not counted by the limiter

    # The bucket is now empty (burst 2): 429 with a retry time, and no claim.
    status, headers, text = await post(client, "StartExecution", {"FlowName": "orders-1", "ExecutionName": "late"})
    check_error(status, headers, text, "ResourceThrottled", 429)
    assert int(headers["x-acs-retry-after"]) > 0
    flow_id = json.loads((await post(client, "DescribeFlow", {"Name": "orders-1"}))[2])["Id"]
    assert not r.exists(keys.execution(keys.execution_tag(flow_id, "late")))
    # A signature error spends nothing and is answered before anything else.
    check_error(*await post(client, "StartExecution", {"FlowName": "orders-1"}, secret="wrong"), "SignatureNotMatch", 403)


async def _rules_seen(client: TestClient, flow: str, bucket: str, r: Any) -> None:
    """Start executions until the limiter charges the bucket (the front door has read the rule)."""
    for i in range(500):
        await ok(client, "StartExecution", {"FlowName": flow, "ExecutionName": f"seen{i}"})
        if r.exists(bucket):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the throttle rule was never applied")


async def test_the_cap_alone_needs_no_script_and_still_refuses_and_spots_replays(
    aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(make_app(make_settings(redis_server, tmp_path, max_running_executions=2, pure_at_start_events=0)))
    await ok(client, "CreateFlow", {"Name": "capped", "Definition": definition("capped"), "Type": "FDL"})
    r.set(keys.running(ACCOUNT_A), 1)
    await ok(client, "StartExecution", {"FlowName": "capped", "ExecutionName": "second"})  # 1 running < 2
    assert runcount.read_total_sync(r, ACCOUNT_A, Settings().running_shards) == 2
    status, headers, text = await post(client, "StartExecution", {"FlowName": "capped", "ExecutionName": "third"})
    check_error(status, headers, text, "ResourceThrottled", 429)
    assert "has 2 running executions, the limit is 2" in text
    flow_id = json.loads((await post(client, "DescribeFlow", {"Name": "capped"}))[2])["Id"]
    assert not r.exists(keys.execution(keys.execution_tag(flow_id, "third")))  # nothing claimed
    r.delete(*runcount.shard_keys(ACCOUNT_A, Settings().running_shards))
    path, form = signed_request("StartExecution", {"FlowName": "capped", "ExecutionName": "fourth"})
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    assert resp.status == 200, await resp.text()
    resp = await client.post(path, data=form, headers=FORM_HEADERS)  # the same nonce again
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNonceUsed", 400)
    assert runcount.read_total_sync(r, ACCOUNT_A, Settings().running_shards) == 1  # the replay counted nothing
