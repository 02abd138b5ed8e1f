"""Prometheus metrics of real processes: the front door's /metrics (requests by action and code,
latency, throttled) and the worker's and timers' own ports (tasks, durations, executions by status,
queue depth), read with prometheus-client's own parser."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_fnf20190315 import models
from prometheus_client.parser import text_string_to_metric_families
from Tea.exceptions import TeaException

from openfnf.redisserver import free_port, start_redis, wait_for_port
from tests.conftest import Service

pytestmark = pytest.mark.e2e

OK_FLOW = """Type: StateMachine
SpecVersion: v1
Name: {name}
StartAt: A
States:
  - Type: Pass
    Name: A
    Next: B
  - Type: Succeed
    Name: B
"""
FAIL_FLOW = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: Nope\n    Detail: refused\n"

PARKED = "openfnf.metrics-test.parked"  # a queue only the timers process watches (and nobody consumes)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, path: str = "/metrics") -> Samples:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, int, int]]:
    """A front door with a throttling rule on ListFlows, a worker and a timers process with metrics ports."""
    tmp: Path = tmp_path_factory.mktemp("metrics")
    server = start_redis(tmp / "redis")
    rules = tmp / "throttle.yaml"
    rules.write_text("rules:\n  - action: ListFlows\n    rate: 0.01\n    burst: 1\n", encoding="utf-8")
    svc = Service(workdir=tmp, redis=server, redis_url=server.url, port=free_port())
    worker_port, timers_port = free_port(), free_port()
    try:
        svc.start("api", "api", env={"OPENFNF_THROTTLE_FILE": str(rules)})
        svc.start("worker", "worker", env={"OPENFNF_METRICS_PORT": str(worker_port), "OPENFNF_HEARTBEAT_FILE": str(tmp / "w.alive")})
        svc.start("timers", "timers", env={
            "OPENFNF_METRICS_PORT": str(timers_port), "OPENFNF_HEARTBEAT_FILE": str(tmp / "t.alive"),
            "OPENFNF_ACTIVITY_QUEUE": PARKED,  # timers never publish activities; lets a test park messages
        })  # fmt: skip
        for port, name in ((worker_port, "worker"), (timers_port, "timers")):  # their metrics servers are up
            wait_for_port(port, svc.procs[name])
        yield svc, worker_port, timers_port
    finally:
        svc.stop_all()
        server.stop()


@pytest.fixture(scope="module")
def traffic(observed: tuple[Service, int, int]) -> dict[str, int]:
    """Known traffic: 5 succeeded and 1 failed execution, one FlowNotExists, one throttled ListFlows."""
    svc, _, _ = observed
    sdk = svc.client()
    sdk.create_flow(models.CreateFlowRequest(name="ok", definition=OK_FLOW.format(name="ok"), description="", type="FDL"))
    sdk.create_flow(models.CreateFlowRequest(name="bad", definition=FAIL_FLOW, description="", type="FDL"))
    for i in range(5):
        sdk.start_execution(models.StartExecutionRequest(flow_name="ok", execution_name=f"e{i}", input=json.dumps({"i": i})))
    sdk.start_execution(models.StartExecutionRequest(flow_name="bad", execution_name="f0"))
    for flow, name in [*(("ok", f"e{i}") for i in range(5)), ("bad", "f0")]:
        sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=30))
    with pytest.raises(TeaException) as missing:
        sdk.describe_flow(models.DescribeFlowRequest(name="nope"))
    assert missing.value.code == "FlowNotExists"
    sdk.list_flows(models.ListFlowsRequest(limit=10))
    with pytest.raises(TeaException) as throttled:
        sdk.list_flows(models.ListFlowsRequest(limit=10))
    assert throttled.value.code == "ResourceThrottled"
    return {"started": 5 + 1}


def test_front_door_counts_requests_by_action_and_code(observed: tuple[Service, int, int], traffic: dict[str, int]) -> None:
    svc, _, _ = observed
    for _ in range(3):  # probes and scrapes are not API traffic
        urllib.request.urlopen(f"http://127.0.0.1:{svc.port}/healthz", timeout=5).close()
    m = scrape(svc.port)
    assert value(m, "openfnf_api_requests_total", action="StartExecution", code="Success") == traffic["started"]
    assert value(m, "openfnf_api_requests_total", action="DescribeExecution", code="Success") == traffic["started"]
    assert value(m, "openfnf_api_requests_total", action="DescribeFlow", code="FlowNotExists") == 1
    assert value(m, "openfnf_api_requests_total", action="ListFlows", code="Success") == 1
    assert value(m, "openfnf_api_requests_total", action="ListFlows", code="ResourceThrottled") == 1
    assert value(m, "openfnf_api_throttled_total", action="ListFlows") == 1
    assert value(m, "openfnf_api_request_seconds_count", action="StartExecution") == traffic["started"]
    assert value(m, "openfnf_api_request_seconds_bucket", action="StartExecution", le="+Inf") == traffic["started"]
    # the long polls waited for the drives: their latency is in the histogram too
    assert (value(m, "openfnf_api_request_seconds_sum", action="DescribeExecution") or 0) > 0
    assert value(m, "openfnf_api_requests_in_flight") == 0
    assert not [k for k in m if ("action", "-") in k[1]], "probes must not be counted as requests"


def test_unknown_actions_share_one_label(observed: tuple[Service, int, int]) -> None:
    svc, _, _ = observed
    for action in ("NoSuchThing", "AnotherMadeUpAction"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{svc.port}/?Action={action}&Version=2019-03-15", timeout=5).close()
        except urllib.error.HTTPError:
            pass
    m = scrape(svc.port)
    assert sum(v for (name, labels), v in m.items() if name == "openfnf_api_requests_total" and ("action", "unknown") in labels) >= 2
    assert not [k for k in m if ("action", "NoSuchThing") in k[1]], "label values stay bounded"


def test_worker_counts_drives_durations_and_executions_by_status(observed: tuple[Service, int, int], traffic: dict[str, int]) -> None:
    _, worker_port, _ = observed
    m = scrape(worker_port)
    assert value(m, "openfnf_executions_total", status="Started") == traffic["started"]
    assert value(m, "openfnf_executions_total", status="Succeeded") == 5
    assert value(m, "openfnf_executions_total", status="Failed") == 1
    driven = value(m, "openfnf_worker_tasks_total", task="openfnf.drive", outcome="driven") or 0
    assert driven >= traffic["started"]
    assert (value(m, "openfnf_worker_task_seconds_count", task="openfnf.drive") or 0) >= driven
    # both consumed queues are reported (their exact value is tested on a parked queue below)
    assert value(m, "openfnf_queue_depth", queue="openfnf.drives") is not None
    assert value(m, "openfnf_queue_depth", queue="openfnf.activities") is not None
    assert value(m, "openfnf_wakeups_pending") is not None and value(m, "openfnf_timers_pending") is not None


def test_queue_depth_is_read_at_scrape_time(observed: tuple[Service, int, int]) -> None:
    """The timers process watches a queue nobody consumes here: its gauge follows the list's length."""
    import redis

    svc, _, timers_port = observed
    assert svc.redis is not None
    r = redis.Redis.from_url(svc.redis.url)
    r.rpush(PARKED, *range(7))
    try:
        assert value(scrape(timers_port), "openfnf_queue_depth", queue=PARKED) == 7
    finally:
        r.delete(PARKED)
    assert value(scrape(timers_port), "openfnf_queue_depth", queue=PARKED) == 0


def test_timers_process_serves_its_own_metrics(observed: tuple[Service, int, int], traffic: dict[str, int]) -> None:
    _, _, timers_port = observed
    deadline = time.monotonic() + 10
    while True:
        m = scrape(timers_port)
        if value(m, "openfnf_timers_fired_total") is not None and value(m, "openfnf_timers_redriven_total") is not None:
            break
        assert time.monotonic() < deadline, "timers metrics missing"
        time.sleep(0.1)
    assert value(m, "openfnf_queue_depth", queue="openfnf.drives") is not None
    assert value(m, "openfnf_timers_fired_total") == 0, "no flow here has a timer"
