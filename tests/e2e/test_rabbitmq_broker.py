"""RabbitMQ as the broker (issue 17): OPENFNF_BROKER_URL=amqp://... end to end, through the official SDK.

A RabbitMQ node of its own (tests/rabbitmq.py) for the module; each service here uses its own queue
names on it, so no test sees another's messages.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from tests.conftest import ROOT, Service, running_service
from tests.e2e.test_walking_skeleton import (  # the walking skeleton again, on RabbitMQ (this module's `service`)
    test_a_failing_flow_ends_failed,
    test_history_pages_with_next_token,
    test_list_and_stop_and_missing_execution,
    test_new_sdk_runs_a_flow_to_succeeded,
    test_old_sdk_runs_a_flow_to_succeeded,
)
from tests.rabbitmq import RabbitServer, start_rabbitmq

pytestmark = pytest.mark.e2e

__all__ = [
    "test_a_failing_flow_ends_failed",
    "test_history_pages_with_next_token",
    "test_list_and_stop_and_missing_execution",
    "test_new_sdk_runs_a_flow_to_succeeded",
    "test_old_sdk_runs_a_flow_to_succeeded",
]

FUNCTIONS = str(ROOT / "tests" / "fixtures" / "functions" / "functions.yaml")
_services = itertools.count()


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    """A RabbitMQ node for this module."""
    server = start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield server
    finally:
        server.close()


def amqp_env(rabbit: RabbitServer, **env: str) -> dict[str, str]:
    """The settings of a service on `rabbit`, with queue names of its own."""
    n = next(_services)
    return {
        "OPENFNF_BROKER_URL": rabbit.url,
        "OPENFNF_DRIVE_QUEUE": f"t{n}.drives",
        "OPENFNF_ACTIVITY_QUEUE": f"t{n}.activities",
        "OPENFNF_FUNCTIONS": FUNCTIONS,
        **env,
    }


@contextlib.contextmanager
def amqp_service(tmp: Path, rabbit: RabbitServer, workers: int = 1, **env: str) -> Iterator[Service]:
    """A service whose broker is `rabbit`."""
    with running_service(tmp, workers=workers, timers=1, **amqp_env(rabbit, **env)) as svc:
        yield svc


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, rabbit: RabbitServer) -> Iterator[Service]:
    """The walking skeleton's service, on RabbitMQ (overrides tests/conftest.py's for this module)."""
    with amqp_service(tmp_path_factory.mktemp("svc"), rabbit) as svc:
        yield svc


MIXED = """Type: StateMachine
SpecVersion: v1
StartAt: Prep
States:
  - Type: Pass
    Name: Prep
    OutputConstructor:
      n.$: $Input.n
      slow.$: $Input.slow
    Next: Route
  - Type: Choice
    Name: Route
    Branches:
      - Condition: $Input.slow == true
        Next: Pause
    Default: Both
  - Type: Wait
    Name: Pause
    Seconds: 1
    Next: Both
  - Type: Parallel
    Name: Both
    Branches:
      - StartAt: Add
        States:
          - Type: Task
            Name: Add
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
              body:
                a.$: $Input.n
                b: 1
            End: true
      - StartAt: Approve
        States:
          - Type: Task
            Name: Approve
            Action: FC:InvokeFunction
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fc:::services/demo/functions/report_token
              body:
                token.$: $Context.Current.TaskToken
                order.$: $Input.n
            End: true
    Next: Done
  - Type: Succeed
    Name: Done
"""

ADDS = """Type: StateMachine
SpecVersion: v1
StartAt: Prep
States:
  - Type: Pass
    Name: Prep
    Next: Add
  - Type: Task
    Name: Add
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
      body:
        a.$: $Input.n
        b: 1
    End: true
"""


def create(sdk: Any, name: str, definition: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))


def start(sdk: Any, flow: str, name: str, data: dict[str, Any]) -> Any:
    return sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=json.dumps(data)))


def wait_end(sdk: Any, flow: str, name: str, seconds: int = 60) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=seconds)).body


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    return sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events


def assert_ended_once(events: list[Any]) -> None:
    """Every event once: ids 1..n, one start, one end (the last event), each step entered once."""
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types.count("ExecutionStarted") == 1 and types.count("ExecutionSucceeded") == 1 and types[-1] == "ExecutionSucceeded", types
    entered = [e.step_name for e in events if e.type == "StepEntered"]
    assert len(entered) == len(set(entered)), entered


def ended(r: redis.Redis, total: int) -> int:
    """How many executions have ended (read from the state Redis: waits on a condition, no sleep)."""
    keys = list(r.scan_iter("fnf:x:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "status")
    return sum(1 for s in pipe.execute() if s in (b"Succeeded", b"Failed", b"Stopped", b"TimedOut"))


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def readyz(svc: Service) -> int:
    """The front door's /readyz status (it pings the state Redis and RabbitMQ)."""
    try:
        with urllib.request.urlopen(f"http://{svc.endpoint}/readyz", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def assert_mixed_outputs(sdk: Any, flow: str, total: int) -> None:
    for i in range(total):
        body = wait_end(sdk, flow, f"e{i}")
        assert body.status == "Succeeded", (i, body.status, body.output)
        out = json.loads(body.output)
        assert out == {"Branch0": {"Body": {"sum": i + 1}}, "Branch1": {"approved": True, "for": i}}, (i, body.output)
        assert_ended_once(history(sdk, flow, f"e{i}"))


@pytest.mark.timeout(600)
def test_mixed_flow_survives_a_worker_sigkilled_midway(tmp_path: Path, rabbit: RabbitServer) -> None:
    total = 300
    with amqp_service(tmp_path, rabbit, workers=2, OPENFNF_ACTIVITY_RESCUE_MS="3000") as svc:
        sdk = svc.client()
        create(sdk, "mixed", MIXED)
        r = redis.Redis.from_url(svc.redis_url)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: start(sdk, "mixed", f"e{i}", {"n": i, "slow": i % 2 == 0}), range(total)))
        wait_for(lambda: ended(r, total) >= total // 4, 240, "a quarter of the executions")
        done_at_kill = ended(r, total)
        svc.procs["worker0"].send_signal(signal.SIGKILL)
        svc.procs.pop("worker0").wait(30)
        assert done_at_kill < total, "every execution ended before the kill; make the run longer"
        wait_for(lambda: ended(r, total) >= min(total, done_at_kill + 20), 240, "progress on the surviving worker")
        svc.start("worker0", "worker", "--hostname", "w0-again@%h")
        assert_mixed_outputs(sdk, "mixed", total)


@pytest.mark.timeout(600)
def test_broker_restarted_mid_run_loses_no_accepted_execution(tmp_path: Path, rabbit: RabbitServer) -> None:
    with amqp_service(tmp_path, rabbit, workers=1) as svc:
        sdk = svc.client()
        create(sdk, "mixed", MIXED)
        assert readyz(svc) == 200
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: start(sdk, "mixed", f"e{i}", {"n": i, "slow": True}), range(100)))
            rabbit.stop()  # the waits are pending, drives and activities queued or in flight
            wait_for(lambda: readyz(svc) == 503, 30, "/readyz to report the broker gone")
            # Accepted while the broker is down: answered once the publish gave up, driven later by the safety net.
            list(pool.map(lambda i: start(sdk, "mixed", f"e{i}", {"n": i, "slow": False}), range(100, 116)))
        rabbit.start()
        assert_mixed_outputs(sdk, "mixed", 116)
        wait_for(lambda: readyz(svc) == 200, 60, "/readyz to be ready again")


def test_front_door_killed_between_claim_and_broker_confirm(tmp_path: Path, rabbit: RabbitServer) -> None:
    """The claim (with its wake-up) lands, the front door dies before RabbitMQ confirmed the drive:
    the safety net drives the execution."""
    with amqp_service(tmp_path, rabbit, workers=1) as svc:
        sdk = svc.client()
        create(sdk, "adds", ADDS)
        svc.stop("api")
        svc.start("api", "api", env={"OPENFNF_FAULT_POINTS": '["api.before_broker_confirm"]'})
        with pytest.raises(Exception):  # noqa: B017 - the connection drops: the process is gone
            start(sdk, "adds", "e0", {"n": 41})
        assert svc.procs["api"].wait(30) == 137
        svc.procs.pop("api")
        svc.start("api", "api")
        body = wait_end(sdk, "adds", "e0")
        assert (body.status, json.loads(body.output)) == ("Succeeded", {"Body": {"sum": 42}})
        assert_ended_once(history(sdk, "adds", "e0"))
        assert "safety net: re-driving" in svc.log("timers0")


def test_drives_and_activities_travel_through_rabbitmq(service: Service, rabbit: RabbitServer) -> None:
    """The broker is RabbitMQ, not the state Redis: the queues are quorum queues there, none in Redis."""
    import amqp

    sdk = service.client()
    create(sdk, "adds_here", ADDS)
    start(sdk, "adds_here", "e0", {"n": 1})
    assert wait_end(sdk, "adds_here", "e0").status == "Succeeded"
    env = service.env()
    conn = amqp.Connection(f"127.0.0.1:{rabbit.port}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        for queue in (env["OPENFNF_DRIVE_QUEUE"], env["OPENFNF_ACTIVITY_QUEUE"]):
            # Declaring it as a classic queue is refused: it exists, and as a quorum queue.
            with pytest.raises(amqp.exceptions.PreconditionFailed):
                channel.queue_declare(queue, durable=True, auto_delete=False)
            channel = conn.channel()
    finally:
        conn.close()
    r = redis.Redis.from_url(service.redis_url)
    assert not r.exists(env["OPENFNF_DRIVE_QUEUE"], env["OPENFNF_ACTIVITY_QUEUE"], "unacked", "unacked_index")


SLOW_TASK = """Type: StateMachine
SpecVersion: v1
StartAt: Work
States:
  - Type: Task
    Name: Work
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/announce/LATEST
      body:
        n.$: $Input.n
        seconds.$: $Input.seconds
    End: true
"""


def test_activity_rescue_covers_a_worker_killed_mid_call_and_its_message_lost(tmp_path: Path, rabbit: RabbitServer) -> None:
    """RabbitMQ gives a killed worker's unacknowledged message back at once; here that message is lost
    too (taken off the queue), so only the timers' activity rescue can run the call again, on RabbitMQ."""
    import amqp

    with amqp_service(tmp_path, rabbit, workers=0, OPENFNF_ACTIVITY_RESCUE_MS="3000") as svc:
        sdk = svc.client()
        r = redis.Redis.from_url(svc.redis_url)
        create(sdk, "slow", SLOW_TASK)
        victim = svc.start("victim", "worker", "--hostname", "victim@%h")
        start(sdk, "slow", "e1", {"n": 1, "seconds": 6})
        # The function is running inside the victim (polled: redis-py's own socket timeout is shorter than a BLPOP here).
        wait_for(lambda: r.llen("test:running") > 0, 60, "the call to start in the victim")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        svc.procs.pop("victim")
        queue = svc.env()["OPENFNF_ACTIVITY_QUEUE"]
        conn = amqp.Connection(f"127.0.0.1:{rabbit.port}", userid="guest", password="guest")
        conn.connect()
        try:
            channel = conn.channel()
            lost = []
            deadline = time.monotonic() + 30
            while not lost:  # RabbitMQ requeues it once it sees the victim's connection closed
                assert time.monotonic() < deadline, "the killed worker's activity message never came back"
                message = channel.basic_get(queue)
                if message is None:
                    time.sleep(0.1)
                    continue
                channel.basic_ack(message.delivery_tag)
                lost.append(message)
            assert lost[0].headers["task"] == "openfnf.activity"
        finally:
            conn.close()
        svc.start("rescuer", "worker", "--hostname", "rescuer@%h")
        done = wait_end(sdk, "slow", "e1")
        assert done.status == "Succeeded" and json.loads(done.output)["Body"] == {"n": 1, "done": True}
        assert "safety net: running 1 activit" in svc.log("timers0")
        assert int(r.get("test:calls") or 0) >= 2
        events = history(sdk, "slow", "e1")
        assert [e.type for e in events].count("TaskSucceeded") == 1
        assert_ended_once(events)


@pytest.mark.parametrize("role", ["api", "worker", "timers"])
def test_a_cluster_state_without_a_broker_of_its_own_refuses_to_start(role: str) -> None:
    """OPENFNF_REDIS_CLUSTER=true and no separate OPENFNF_BROKER_URL: every process exits at start, saying what to set."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
    env.update(OPENFNF_REDIS_CLUSTER="true", OPENFNF_REDIS_URL="redis://127.0.0.1:1/0", OPENFNF_PORT="1")
    done = subprocess.run([sys.executable, "-m", "openfnf", role], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "cannot use a cluster as its broker. Set OPENFNF_BROKER_URL" in done.stderr
