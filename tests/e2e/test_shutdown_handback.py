"""A driver told to stop hands its execution back between rounds: the lease is released, the
events it has not seen stay in the inbox with their wake-up, and the next drive finishes the job.

The execution is created through a real front door (no worker runs); the driver runs here, on the
same redis-server, with a commit that lets one more event arrive during the round, as an activity
result or a timer would.
"""
from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from common import keys
from common.settings import Settings
from tests.conftest import Service, running_service
from worker import heartbeat
from worker.driver import Driver

pytestmark = pytest.mark.e2e

FLOW = "Type: StateMachine\nSpecVersion: v1\nName: handback\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    Next: B\n  - Type: Succeed\n    Name: B\n"
NOISE = json.dumps({"t": "Noise"})  # an event the interpreter drops: it only makes the inbox non-empty


@pytest.fixture(scope="module")
def front_door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("handback"), workers=0, timers=0) as svc:
        yield svc


def started_tag(svc: Service, name: str) -> str:
    sdk = svc.client()
    try:
        sdk.create_flow(models.CreateFlowRequest(name="handback", definition=FLOW, description="", type="FDL"))
    except Exception as exc:  # noqa: BLE001 - created by the other test of this module
        assert getattr(exc, "code", "") == "FlowAlreadyExists", exc
    flow_id = sdk.describe_flow(models.DescribeFlowRequest(name="handback")).body.id
    sdk.start_execution(models.StartExecutionRequest(flow_name="handback", execution_name=name))
    return keys.execution_tag(flow_id, name)


def has_wake_up(r: redis.Redis, tag: str, name: str) -> bool:
    """The safety net holds a wake-up for the execution: its tag, or the start's own (keys.pending_start,
    written before the claim and resolved by the timers through the flow)."""
    n = Settings().partitions
    members = [m.decode() for p in range(n) for m in r.zrange(keys.wake(p, n), 0, -1)]
    return tag in members or any(m.startswith("[") and json.loads(m)[1:] == ["handback", name] for m in members)


def driver_with_a_late_event(svc: Service, r: redis.Redis) -> Driver:
    """A real Driver whose first round sees one more inbox event arrive while it worked (after it
    read the inbox, before its commit)."""
    driver = Driver(r, Settings(redis_url=svc.redis_url, lease_ms=60_000))
    dispatch = driver.dispatcher.dispatch
    calls = {"n": 0}

    def dispatch_while_an_event_arrives(tag: str, commands: list[dict[str, Any]], *rest: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            r.rpush(keys.inbox(tag), NOISE)
        dispatch(tag, commands, *rest)

    driver.dispatcher.dispatch = dispatch_while_an_event_arrives  # type: ignore[method-assign]
    return driver


def test_a_stopping_worker_hands_the_execution_back(front_door: Service) -> None:
    r = redis.Redis.from_url(front_door.redis_url)
    tag = started_tag(front_door, "e1")
    driver = driver_with_a_late_event(front_door, r)
    heartbeat.STOPPING.set()
    try:
        assert contextvars.copy_context().run(driver.drive, tag) == "handed_back"
    finally:
        heartbeat.STOPPING.clear()
    assert r.exists(keys.lease(tag)) == 0, "the lease is released at once, not left to expire"
    assert r.lrange(keys.inbox(tag), 0, -1) == [NOISE.encode()], "the unseen event stays for the next drive"
    assert has_wake_up(r, tag, "e1"), "its wake-up stays, so the safety net re-drives it"
    assert r.hget(keys.execution(tag), "status") == b"Succeeded", "what the round did is committed"
    assert contextvars.copy_context().run(Driver(r, Settings(redis_url=front_door.redis_url)).drive, tag) == "driven"
    assert r.llen(keys.inbox(tag)) == 0


def test_a_running_worker_drives_on(front_door: Service) -> None:
    """The same late event without a stop: the driver takes another round itself."""
    r = redis.Redis.from_url(front_door.redis_url)
    tag = started_tag(front_door, "e2")
    assert contextvars.copy_context().run(driver_with_a_late_event(front_door, r).drive, tag) == "driven"
    assert r.llen(keys.inbox(tag)) == 0 and r.exists(keys.lease(tag)) == 0
