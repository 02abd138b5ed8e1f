"""Resharding under load (issue 17: MOVED/ASK): the slot holding several running executions moves to
another primary key by key while they wait and a long poll waits on one of them; every execution ends
once with its full history, the long poll answers, and no request meets a 500."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from redis.crc import key_slot

from common import keys
from tests.conftest import Service
from tests.rediscluster import Cluster, running_cluster_service

pytestmark = pytest.mark.e2e

FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: Begin
States:
  - Type: Pass
    Name: Begin
    Next: Pause
  - Type: Wait
    Name: Pause
    Seconds: 2
    Next: Done
  - Type: Pass
    Name: Done
    End: true
"""
SAME_SLOT = 5  # executions whose keys all live in the slot that moves
OTHERS = 20


@pytest.fixture(scope="module")
def cluster_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Cluster]]:
    with running_cluster_service(tmp_path_factory.mktemp("cluster-reshard"), workers=1, timers=1) as pair:
        yield pair


def _names_in_one_slot(flow_id: str, count: int) -> tuple[int, list[str]]:
    """`count` execution names whose tags hash to one slot, and that slot."""
    by_slot: dict[int, list[str]] = {}
    for i in range(1_000_000):
        name = f"s{i}"
        slot = key_slot(keys.execution(keys.execution_tag(flow_id, name)).encode())
        by_slot.setdefault(slot, []).append(name)
        if len(by_slot[slot]) == count:
            return slot, by_slot[slot]
    raise AssertionError("unreachable")


def _describe(sdk: Any, name: str, wait: int) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name="reshard", execution_name=name, wait_time_seconds=wait)).body


def _until_ended(sdk: Any, name: str) -> Any:
    deadline = time.monotonic() + 90
    while True:
        body = _describe(sdk, name, 10)
        if body.status != "Running" or time.monotonic() > deadline:
            return body


def test_executions_survive_their_slot_moving_to_another_primary(cluster_service: tuple[Service, Cluster]) -> None:
    svc, cluster = cluster_service
    sdk = svc.client()
    sdk.create_flow(models.CreateFlowRequest(name="reshard", definition=FLOW, description="", type="FDL"))
    flow_id = sdk.describe_flow(models.DescribeFlowRequest(name="reshard")).body.id
    slot, moving = _names_in_one_slot(flow_id, SAME_SLOT)
    names = moving + [f"o{i}" for i in range(OTHERS)]
    for name in names:
        sdk.start_execution(models.StartExecutionRequest(flow_name="reshard", execution_name=name, input=json.dumps({"n": name})))
    source = cluster.owner_of_slot(slot)
    target = next(n for n in cluster.primaries() if n is not source)
    with ThreadPoolExecutor(2) as pool:
        polled = pool.submit(_describe, sdk, moving[0], 30)  # a long poll waiting while its execution's keys move
        # Key by key, a DescribeExecution between two moves: the clients meet ASK (and TRYAGAIN for a
        # script whose keys are split) while the slot is half moved, then MOVED once it has.
        cluster.move_slot(slot, target, between_keys=lambda: _describe(sdk, moving[1], 0))
        assert cluster.owner_of_slot(slot) is target
        assert polled.result(timeout=60).status == "Succeeded"
    ends = [_until_ended(sdk, name) for name in names]
    assert [e.status for e in ends] == ["Succeeded"] * len(names), [(n, e.status) for n, e in zip(names, ends, strict=True)]
    for name in names:
        events = list(sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="reshard", execution_name=name, limit=100)).body.events)
        types = [e.type for e in events]
        assert [e.event_id for e in events] == list(range(1, len(events) + 1)), name
        assert types.count("ExecutionStarted") == 1 and types.count("ExecutionSucceeded") == 1 and types[-1] == "ExecutionSucceeded", (name, types)
    assert "unhandled error" not in svc.log("api"), svc.log("api")[-3000:]
