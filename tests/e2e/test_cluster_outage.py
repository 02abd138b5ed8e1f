"""State on a real 3-primary Redis Cluster: a shard that stops answering during StartExecutions never
leaves an execution Running with no wake-up, and the running count comes back (issue 17)."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from common import keys, runcount
from common.settings import Settings
from tests.conftest import Service
from tests.rediscluster import Cluster, running_cluster_service

pytestmark = pytest.mark.e2e

PASS = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
TERMINAL = {"Succeeded", "Failed", "Stopped", "TimedOut"}


@pytest.fixture(scope="module")
def cluster_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Cluster]]:
    with running_cluster_service(tmp_path_factory.mktemp("cluster-outage")) as pair:
        yield pair


def _readyz(svc: Service) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.port}/readyz", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_shard_down_during_starts_leaves_no_execution_running_without_a_wakeup(cluster_service: tuple[Service, Cluster]) -> None:
    svc, cluster = cluster_service
    sdk = svc.client()
    account = "1234567890"  # Settings.account_id's default: the account of the service's one key
    sdk.create_flow(models.CreateFlowRequest(name="outage", definition=PASS, description="", type="FDL"))
    flow_id = sdk.describe_flow(models.DescribeFlowRequest(name="outage")).body.id
    # Freeze a primary that holds neither the account (nonces, flow, running count) nor the flow's
    # executions index: the starts reach it only for their own keys and wake-up partitions.
    busy = {cluster.owner(keys.flow(account, "outage")).port, cluster.owner(keys.executions_index(flow_id)).port}
    victim = next(n for n in cluster.primaries() if n.port not in busy)
    names = [f"o{i}" for i in range(30)]
    victim_keys = [n for n in names if cluster.owner(keys.execution(keys.execution_tag(flow_id, n))).port == victim.port]
    victim_wakes = [n for n in names if cluster.owner(keys.wake_for(keys.pending_start(account, "outage", n), 16)).port == victim.port]
    assert victim_keys and victim_wakes, "the victim shard holds some executions and some wake-up partitions"

    def start(name: str) -> str:
        try:
            sdk.start_execution(models.StartExecutionRequest(flow_name="outage", execution_name=name))
            return "ok"
        except Exception as exc:  # noqa: BLE001 - a 500 while the shard is down is allowed; what it leaves behind is the test
            return type(exc).__name__

    victim.freeze()
    try:
        with ThreadPoolExecutor(6) as pool:
            outcomes = dict(zip(names, pool.map(start, names), strict=True))
        assert _readyz(svc) == 503  # one primary does not answer: not ready
    finally:
        victim.thaw()
    refused = [n for n, o in outcomes.items() if o != "ok"]
    assert refused, "some starts failed while their shard was down"
    cluster.wait_ok()
    _wait(lambda: _readyz(svc) == 200, 30, "/readyz to recover")

    def status(name: str) -> str | None:
        try:
            return str(sdk.describe_execution(models.DescribeExecutionRequest(flow_name="outage", execution_name=name)).body.status)
        except Exception as exc:  # noqa: BLE001 - ExecutionNotExists: the claim never landed
            if "ExecutionNotExists" in str(exc):
                return None
            raise

    # Every execution that exists (answered 200, or answered 500 yet claimed) ends; none stays Running.
    _wait(lambda: all(status(n) in TERMINAL | {None} for n in names), 90, f"every claimed execution to end ({outcomes})")
    for name, outcome in outcomes.items():
        if outcome == "ok":
            assert status(name) == "Succeeded", name
    # The running count came back (never above what still runs: nothing).
    state = cluster.client()
    _wait(lambda: runcount.read_total_sync(state, account, Settings().running_shards) <= 0, 30, "the running count to come back")
