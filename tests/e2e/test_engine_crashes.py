"""Crashes never lose an accepted execution (issue 6): real processes, real signals, SIGKILL and restarts."""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from common import keys
from openfnf.redisserver import start_redis
from tests.conftest import ROOT, Service, running_service

pytestmark = pytest.mark.e2e

FUNCTIONS = str(ROOT / "tests" / "fixtures" / "functions" / "functions.yaml")
# A killed worker's unacknowledged activity comes back after the visibility timeout: short here.
ENV = {"OPENFNF_FUNCTIONS": FUNCTIONS, "OPENFNF_VISIBILITY_TIMEOUT_SECONDS": "3", "OPENFNF_ACTIVITY_RESCUE_MS": "3000"}

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
    Next: After
  - Type: Pass
    Name: After
    End: true
"""
WAITS = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 3\n    Next: P\n  - Type: Pass\n    Name: P\n    End: true\n"
PASSES = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    Next: B\n  - Type: Pass\n    Name: B\n    End: true\n"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path, workers=0, timers=1, **ENV) as service:
        yield service


def create(sdk: Any, name: str, definition: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))


def wait_end(sdk: Any, flow: str, name: str, seconds: int = 60) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=seconds)).body


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    return sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events


def assert_clean_history(events: list[Any]) -> None:
    """No duplicated or missing events: ids 1..n, one start, one end, each step entered and exited once."""
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types.count("ExecutionStarted") == 1 and types[-1] == "ExecutionSucceeded"
    entered = [e.step_name for e in events if e.type == "StepEntered"]
    assert len(entered) == len(set(entered)), entered


def test_worker_killed_in_the_middle_of_a_drive(svc: Service) -> None:
    sdk = svc.client()
    create(sdk, "pure", PASSES)
    svc.start("doomed", "worker", "--hostname", "doomed@%h", env={"OPENFNF_FAULT_POINTS": '["driver.before_commit"]'})
    sdk.start_execution(models.StartExecutionRequest(flow_name="pure", execution_name="e1", input='{"k": 1}'))
    assert svc.procs["doomed"].wait(60) == 137  # it died after computing the decision, before writing it
    svc.procs.pop("doomed")
    assert wait_end(sdk, "pure", "e1", 1).status == "Running"
    svc.start("healthy", "worker", "--hostname", "healthy@%h")
    done = wait_end(sdk, "pure", "e1")
    assert done.status == "Succeeded" and json.loads(done.output) == {"k": 1}
    assert_clean_history(history(sdk, "pure", "e1"))


def test_worker_sigkilled_in_the_middle_of_an_activity(svc: Service) -> None:
    sdk = svc.client()
    r = redis.Redis.from_url(svc.redis_url)
    create(sdk, "slow", SLOW_TASK)
    victim = svc.start("victim", "worker", "--hostname", "victim@%h")
    # The call runs 6 s: a test process slowed by a busy machine still kills the victim mid-call.
    sdk.start_execution(models.StartExecutionRequest(flow_name="slow", execution_name="e1", input='{"n": 1, "seconds": 6}'))
    assert r.blpop("test:running", timeout=60) is not None  # the function is running inside the victim
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    svc.procs.pop("victim")
    svc.start("rescuer", "worker", "--hostname", "rescuer@%h")
    done = wait_end(sdk, "slow", "e1")
    assert done.status == "Succeeded" and json.loads(done.output)["Body"] == {"n": 1, "done": True}
    # Side effects are at least once: the call ran again (Celery's re-delivery and the activity
    # safety net may both run it); the history below is exactly once.
    assert int(r.get("test:calls")) >= 2
    events = history(sdk, "slow", "e1")
    assert_clean_history(events)
    assert [e.type for e in events].count("TaskSucceeded") == 1  # history is exactly once


def _timers(r: redis.Redis) -> int:
    """Timers pending over every partition (keys.timers, Settings.partitions' default)."""
    return sum(int(r.zcard(keys.timers(p, 16))) for p in range(16))


def test_timers_sigkilled_with_timers_pending(svc: Service) -> None:
    sdk = svc.client()
    create(sdk, "waits", WAITS)
    svc.start("worker", "worker")
    for i in range(5):
        sdk.start_execution(models.StartExecutionRequest(flow_name="waits", execution_name=f"e{i}"))
    r = redis.Redis.from_url(svc.redis_url)
    deadline = time.monotonic() + 60
    while _timers(r) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _timers(r) == 5  # every execution waits on its timer
    svc.stop("timers0", signal.SIGKILL)
    last_due_ms = max(score for p in range(16) for _, score in r.zrange(keys.timers(p, 16), 0, -1, withscores=True))
    while time.time() * 1000 <= last_due_ms:  # every timer comes due while no timers process runs
        time.sleep(0.05)
    assert _timers(r) == 5  # and none has fired
    assert wait_end(sdk, "waits", "e0", 1).status == "Running"
    svc.start("timers_again", "timers")
    for i in range(5):
        assert wait_end(sdk, "waits", f"e{i}").status == "Succeeded"


def test_redis_restarted_while_executions_wait(svc: Service) -> None:
    sdk = svc.client()
    create(sdk, "survives", WAITS)
    svc.start("worker", "worker")
    for i in range(10):
        sdk.start_execution(models.StartExecutionRequest(flow_name="survives", execution_name=f"e{i}"))
    r = redis.Redis.from_url(svc.redis_url)
    deadline = time.monotonic() + 60
    while _timers(r) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.redis is not None
    data_dir = Path(svc.redis_url.removeprefix("unix://")).parent
    svc.redis.stop()  # SHUTDOWN: the AOF is flushed
    svc.redis = start_redis(data_dir)
    assert svc.redis.url == svc.redis_url
    for i in range(10):
        done = wait_end(sdk, "survives", f"e{i}")
        assert done.status == "Succeeded", (i, done.status)


@pytest.mark.timeout(600)  # ~40 s on a quiet 2-core machine; its own deadlines add up past the default 300 s
def test_a_thousand_parallel_executions_survive_a_worker_killed_every_few_seconds(svc: Service) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    Branches:
      - StartAt: A
        States:
          - Type: Task
            Name: A
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
              body:
                a.$: $Input.n
                b: 1
            End: true
      - StartAt: B
        States:
          - Type: Task
            Name: B
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
              body:
                a.$: $Input.n
                b: 2
            End: true
    End: true
"""
    sdk = svc.client()
    create(sdk, "fanout", flow)
    total = 1000
    # Every execution is accepted before a worker runs, so the work is all queued when the kills begin:
    # however fast the machine, each kill below finds executions in flight.
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: sdk.start_execution(models.StartExecutionRequest(
            flow_name="fanout", execution_name=f"e{i}", input=json.dumps({"n": i}))), range(total)))
    for i in range(3):
        svc.start(f"w{i}", "worker", "--hostname", f"w{i}@%h")
    r = redis.Redis.from_url(svc.redis_url)
    # A worker is SIGKILLed each time another eighth of the executions has ended, while half of them
    # still run: the kills follow the run's progress, not a clock.
    for kill in range(4):
        mark = total * (kill + 1) // 8
        done = _wait_done(r, at_least=mark, timeout=240)
        assert done < total, f"all {total} executions ended before kill {kill + 1} ({done} ended at the check)"
        name = f"w{kill % 3}"
        svc.procs[name].send_signal(signal.SIGKILL)
        svc.procs[name].wait(30)
        svc.procs.pop(name)
        svc.start(name, "worker", "--hostname", f"{name}-{kill}@%h")
    for i in range(total):
        body = wait_end(sdk, "fanout", f"e{i}")
        assert body.status == "Succeeded", (i, body.status)
        out = json.loads(body.output)
        assert (out["Branch0"]["Body"]["sum"], out["Branch1"]["Body"]["sum"]) == (i + 1, i + 2)


def _wait_done(r: redis.Redis, at_least: int, timeout: float) -> int:
    """Wait until at least `at_least` executions have ended; how many had."""
    deadline = time.monotonic() + timeout
    while True:
        done = sum(1 for s in _statuses(r) if s in (b"Succeeded", b"Failed"))
        if done >= at_least:
            return done
        assert time.monotonic() < deadline, f"only {done} executions ended within {timeout} s (waiting for {at_least})"
        time.sleep(0.05)


def _statuses(r: redis.Redis) -> list[bytes]:
    pipe = r.pipeline(transaction=False)
    keys = list(r.scan_iter("fnf:x:*", count=1000))
    for key in keys:
        pipe.hget(key, "status")
    return [s or b"" for s in pipe.execute()]
