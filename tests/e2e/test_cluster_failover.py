"""Issue 17's proof: a 1,000-execution mixed flow (Pass, function Task, Wait, Parallel, Choice, a callback
task) through the official SDK with the state on a real Redis Cluster (3 primaries, one replica each) and
the broker on RabbitMQ: a worker SIGKILLed midway and one primary replaced by its replica; every execution
ends exactly once with its full history, and the keys spread over the primaries.

Lean on purpose (the whole suite stays fast): a 1 s Wait, the callback reported by the function itself,
starts and long polls from many threads at once."""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from tests.conftest import ROOT, Service
from tests.rabbitmq import start_rabbitmq
from tests.rediscluster import Cluster, running_cluster_service

pytestmark = pytest.mark.e2e

FUNCTIONS = str(ROOT / "tests" / "fixtures" / "functions" / "functions.yaml")
ENV = {"OPENFNF_FUNCTIONS": FUNCTIONS, "OPENFNF_VISIBILITY_TIMEOUT_SECONDS": "3", "OPENFNF_ACTIVITY_RESCUE_MS": "3000"}
COUNT = 1000
THREADS = 16

MIXED = """Type: StateMachine
SpecVersion: v1
StartAt: Begin
States:
  - Type: Pass
    Name: Begin
    Next: Add
  - Type: Task
    Name: Add
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
      body:
        a.$: $Input.n
        b: 1
    Next: Pause
  - Type: Wait
    Name: Pause
    Seconds: 1
    Next: Both
  - Type: Parallel
    Name: Both
    Branches:
      - StartAt: Side
        States:
          - Type: Pass
            Name: Side
            End: true
      - StartAt: Callback
        States:
          - Type: Task
            Name: Callback
            Action: FC:InvokeFunction
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:services/demo/functions/report_token
              body:
                token.$: $Context.Current.TaskToken
                order: o
            End: true
    Next: Route
  - Type: Choice
    Name: Route
    Branches:
      - Condition: $Input.nothing == "x"
        Next: Wrong
    Default: Done
  - Type: Fail
    Name: Wrong
    Code: Wrong
  - Type: Succeed
    Name: Done
"""


@pytest.fixture(scope="module")
def cluster_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Cluster]]:
    tmp = tmp_path_factory.mktemp("cluster-failover")
    rabbit = start_rabbitmq(tmp / "rabbitmq")
    try:
        env = {**ENV, "OPENFNF_BROKER_URL": rabbit.url, "OPENFNF_DRIVE_QUEUE": "cf.drives", "OPENFNF_ACTIVITY_QUEUE": "cf.activities"}
        with running_cluster_service(tmp, workers=2, timers=2, replicas=1, **env) as pair:
            yield pair
    finally:
        rabbit.close()


def _start(sdk: Any, name: str, n: int) -> None:
    """StartExecution until it answers (a primary failing over may 500 it meanwhile; the same name is idempotent)."""
    deadline = time.monotonic() + 90
    while True:
        try:
            sdk.start_execution(models.StartExecutionRequest(flow_name="mixed", execution_name=name, input=json.dumps({"n": n})))
            return
        except Exception as exc:
            if "ExecutionAlreadyExists" in str(exc):
                return  # it ran to its end meanwhile
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _describe(sdk: Any, name: str) -> Any:
    deadline = time.monotonic() + 120
    while True:
        try:
            body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="mixed", execution_name=name, wait_time_seconds=20)).body
            if body.status != "Running" or time.monotonic() > deadline:
                return body
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _history(sdk: Any, name: str) -> list[Any]:
    return list(sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="mixed", execution_name=name, limit=1000)).body.events)


def test_mixed_flow_survives_a_killed_worker_and_a_primary_failover(cluster_service: tuple[Service, Cluster]) -> None:
    svc, cluster = cluster_service
    sdk = svc.client()
    sdk.create_flow(models.CreateFlowRequest(name="mixed", definition=MIXED, description="", type="FDL"))
    names = [f"m{i}" for i in range(COUNT)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: _start(sdk, names[i], i), range(COUNT // 2)))
        # Midway: a worker dies without a word, and one primary hands over to its replica and is killed.
        svc.procs["worker0"].send_signal(signal.SIGKILL)
        svc.procs.pop("worker0").wait()
        svc.start("worker2", "worker", "--hostname", "w2@%h")
        old = cluster.primaries()[0]
        replica = cluster.replica_of(old)
        assert replica is not None
        replica.client().execute_command("CLUSTER", "FAILOVER")  # the replica catches up, then takes over
        deadline = time.monotonic() + 60
        while replica.client().info("replication")["role"] != "master":
            assert time.monotonic() < deadline, "the replica never took over"
            time.sleep(0.1)
        cluster.kill(old)
        list(pool.map(lambda i: _start(sdk, names[i], i), range(COUNT // 2, COUNT)))
        ends = list(pool.map(lambda n: _describe(sdk, n), names))
    statuses = {n: e.status for n, e in zip(names, ends, strict=True)}
    assert all(s == "Succeeded" for s in statuses.values()), {n: s for n, s in statuses.items() if s != "Succeeded"}
    with ThreadPoolExecutor(THREADS) as pool:
        histories = list(pool.map(lambda n: _history(sdk, n), names))
    for name, events in zip(names, histories, strict=True):
        types = [e.type for e in events]
        assert [e.event_id for e in events] == list(range(1, len(events) + 1)), name
        assert types.count("ExecutionStarted") == 1 and types.count("ExecutionSucceeded") == 1 and types[-1] == "ExecutionSucceeded", (name, types)
        entered = [e.step_name for e in events if e.type == "StepEntered"]
        assert sorted(entered) == sorted(["Begin", "Add", "Pause", "Both", "Side", "Callback", "Route", "Done"]), (name, entered)
    # Through the failover the front door answered 503 at worst (retried above), never a 500.
    assert "unhandled error" not in svc.log("api"), svc.log("api")[-3000:]
    # The keys spread over every primary, none holding more than half of them.
    sizes = [int(n.client().dbsize()) for n in cluster.primaries()]
    assert len(sizes) == 3 and all(s > 0 for s in sizes) and max(sizes) <= sum(sizes) / 2, sizes
