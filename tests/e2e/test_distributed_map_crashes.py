"""Distributed Map under crashes (issue 16): a worker SIGKILLed and the timers restarted mid-run, a driver
killed between reserving children and starting them, Redis restarted; every item ends exactly once as
a child execution, the counts stay exact, and the parent ends once."""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from common import keys
from openfnf.redisserver import start_redis
from tests.conftest import Service, running_service

pytestmark = pytest.mark.e2e

ITEMS = int(os.environ.get("OPENFNF_TEST_DMAP_ITEMS", "10000"))
PASS = "{StartAt: P, States: [{Type: Pass, Name: P, End: true}]}"  # children run by the MapRun's driver itself
WAIT0 = "{StartAt: P, States: [{Type: Wait, Name: P, Seconds: 0, End: true}]}"  # Standard children driven as executions
FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: M
States:
  - Type: Map
    Name: M
    ProcessorConfig: {ExecutionMode: MODE}
    ItemReader: {SourceType: OSS_JSON_LIST, SourceParameters: {Bucket: data, ObjectName: items.json}}
    MaxConcurrency: 300
    Processor: PROCESSOR
    End: true
"""


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    buckets = tmp_path / "buckets"
    (buckets / "data").mkdir(parents=True)
    env = {"OPENFNF_BUCKETS_DIR": str(buckets), "OPENFNF_VISIBILITY_TIMEOUT_SECONDS": "3", "OPENFNF_ACTIVITY_RESCUE_MS": "3000"}
    with running_service(tmp_path, workers=0, timers=1, **env) as service:
        yield service


def _setup(svc: Service, n: int, processor: str = PASS) -> tuple[Any, str]:
    (svc.workdir / "buckets" / "data" / "items.json").write_text(json.dumps(list(range(n))))
    sdk = svc.client()
    sdk.create_flow(models.CreateFlowRequest(name="big", definition=FLOW.replace("PROCESSOR", processor).replace("MODE", "Express" if processor == PASS else "Standard"), description="", type="FDL"))
    return sdk, sdk.start_execution(models.StartExecutionRequest(flow_name="big", input="{}")).body.name


def _run_of(sdk: Any, name: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="big", execution_name=name, limit=100)).body.events
        for e in events:
            if e.type == "MapRunStarted":
                return str(json.loads(e.event_detail)["output"]["MapRunName"])
        time.sleep(0.05)
    raise AssertionError("no MapRunStarted")


def _counts(sdk: Any, name: str, run: str) -> Any:
    c = sdk.describe_map_run(models.DescribeMapRunRequest(flow_name="big", execution_name=name, map_run_name=run)).body.item_counts
    assert c.pending + c.running + c.succeed + c.failed + c.aborted == c.total
    return c


def _check_end(svc: Service, sdk: Any, name: str, run: str, n: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="big", execution_name=name, wait_time_seconds=30)).body
        if body.status != "Running" or time.monotonic() > deadline:
            break
    assert body.status == "Succeeded", body.status
    assert json.loads(body.output) == {"Items": list(range(n))}  # every item, in order, from its own child
    c = _counts(sdk, name, run)
    assert (c.total, c.succeed, c.failed, c.aborted, c.running) == (n, n, 0, 0, 0)
    r = redis.Redis.from_url(svc.redis_url)
    flow_id = r.hget(keys.flow(r.hget(keys.execution(keys.execution_tag(_flow_id(r), name)), "acct").decode(), "big"), "Id").decode()
    assert r.zcard(keys.maprun_children(f"{flow_id}/{run}")) == n  # one child per item: names are deterministic
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="big", execution_name=name, limit=1000)).body.events
    types = [e.type for e in events]
    assert types.count("MapRunStarted") == 1 and types.count("MapRunSucceeded") == 1 and types.count("ExecutionSucceeded") == 1
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))


def _flow_id(r: redis.Redis) -> str:
    for key in r.scan_iter(match="fnf:xi:*"):
        return key.decode().split("{", 1)[1].rstrip("}")
    raise AssertionError("no executions index")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("processor", "items"), [(PASS, ITEMS), (WAIT0, ITEMS // 3)], ids=["inline-children", "driven-children"])
def test_worker_sigkilled_and_timers_restarted_mid_run(svc: Service, processor: str, items: int) -> None:
    svc.start("w0", "worker", "--hostname", "w0@%h")
    svc.start("w1", "worker", "--hostname", "w1@%h")
    ITEMS = items  # noqa: N806
    sdk, name = _setup(svc, ITEMS, processor)
    run = _run_of(sdk, name)
    deadline = time.monotonic() + 240
    while _counts(sdk, name, run).succeed < ITEMS // 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    svc.procs["w0"].send_signal(signal.SIGKILL)
    svc.procs.pop("w0").wait(30)
    svc.stop("timers0", signal.SIGKILL)
    svc.start("timers0", "timers")
    while _counts(sdk, name, run).succeed < 2 * ITEMS // 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    svc.start("w0", "worker", "--hostname", "w0b@%h")
    _check_end(svc, sdk, name, run, ITEMS)


@pytest.mark.timeout(300)
def test_driver_killed_between_reserving_children_and_starting_them(svc: Service) -> None:
    svc.start("doomed", "worker", "--hostname", "doomed@%h", env={"OPENFNF_FAULT_POINTS": '["maprun.after_reserve"]'})
    sdk, name = _setup(svc, 500, WAIT0)
    assert svc.procs["doomed"].wait(60) == 137
    svc.procs.pop("doomed")
    run = _run_of(sdk, name)
    c = _counts(sdk, name, run)
    assert c.running > 0 and c.succeed == 0  # reserved, never started
    svc.start("w0", "worker", "--hostname", "w0@%h")
    _check_end(svc, sdk, name, run, 500)


@pytest.mark.timeout(300)
def test_redis_restarted_mid_run(svc: Service) -> None:
    svc.start("w0", "worker", "--hostname", "w0@%h")
    n = 2000
    sdk, name = _setup(svc, n)
    run = _run_of(sdk, name)
    deadline = time.monotonic() + 120
    while _counts(sdk, name, run).succeed < n // 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert svc.redis is not None
    data_dir = Path(svc.redis_url.removeprefix("unix://")).parent
    svc.redis.stop()  # SHUTDOWN: the AOF is flushed
    svc.redis = start_redis(data_dir)
    _check_end(svc, sdk, name, run, n)
