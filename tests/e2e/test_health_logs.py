"""OPENFNF_LOG_FORMAT=json on real processes: every line is one JSON object, a front-door failure is
logged with the request id the client got, a driver failure with its flow and execution."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys
from openfnf.redisserver import free_port, start_redis
from tests.conftest import Service

pytestmark = pytest.mark.e2e

FLOW = "Type: StateMachine\nSpecVersion: v1\nName: logged\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def json_lines(svc: Service, name: str) -> list[dict[str, Any]]:
    """Every line process `name` wrote, each parsed as JSON (fails on any other line)."""
    out = []
    for n, line in enumerate(svc.log(name).splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            raise AssertionError(f"{name}.log line {n} is not JSON: {line[:200]!r}") from None
        assert {"time", "level", "logger", "message", "request_id", "flow", "execution"} <= set(doc), line
        out.append(doc)
    return out


def wait_for_line(svc: Service, name: str, pred: Any, what: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in json_lines(svc, name) if pred(d)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line of {name} for {what}:\n{svc.log(name)[-2000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("logs")
    server = start_redis(tmp / "redis")
    service = Service(workdir=tmp, redis=server, redis_url=server.url, port=free_port(), env_extra={"OPENFNF_LOG_FORMAT": "json"})
    try:
        service.start("api", "api")
        service.start("timers", "timers", env={"OPENFNF_HEARTBEAT_FILE": str(tmp / "t.alive")})
        yield service
    finally:
        service.stop_all()
        if service.redis is not None:
            service.redis.stop()


def test_driver_failure_is_logged_with_flow_and_execution(svc: Service) -> None:
    assert svc.redis is not None
    sdk = svc.client()
    flow_id = sdk.create_flow(models.CreateFlowRequest(name="logged", definition=FLOW, description="", type="FDL")).body.id
    sdk.start_execution(models.StartExecutionRequest(flow_name="logged", execution_name="lost-def"))
    # no worker yet; take the definition away so the drive fails inside the driver
    r = redis.Redis.from_url(svc.redis.url)
    def_id = r.hget(keys.execution(keys.execution_tag(flow_id, "lost-def")), "defid")
    assert def_id and r.delete(keys.definition(def_id.decode())) == 1
    svc.start("worker", "worker", env={"OPENFNF_HEARTBEAT_FILE": str(svc.workdir / "w.alive")})
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="logged", execution_name="lost-def", wait_time_seconds=30)).body
    assert done.status == "Failed"
    line = wait_for_line(svc, "worker", lambda d: d["level"] == "ERROR", "the driver's failure")
    assert (line["flow"], line["execution"]) == ("logged", "lost-def")
    assert "LookupError" in line["exception"] and line["logger"] == "worker.driver"
    json_lines(svc, "worker")  # the whole worker log, Celery's own lines included, is JSON


def test_front_door_failure_is_logged_with_the_clients_request_id(svc: Service) -> None:
    assert svc.redis is not None
    sdk = svc.client()
    sdk.list_flows(models.ListFlowsRequest(limit=1))  # connections warm, nonce store reachable
    svc.redis.stop()
    try:
        with pytest.raises(TeaException) as info:
            sdk.describe_flow(models.DescribeFlowRequest(name="logged"))
        assert (info.value.code, info.value.statusCode) == ("ServiceUnavailable", 503)  # issue 14: not a bare 500
        request_id = info.value.data["RequestId"]
        line = wait_for_line(svc, "api", lambda d: d["request_id"] == request_id, f"request {request_id}")
        assert line["level"] == "ERROR" and "Redis does not answer" in line["message"]
        wait_for_line(svc, "timers", lambda d: d["level"] == "WARNING", "the timers' Redis error")
    finally:
        svc.redis = start_redis(svc.workdir / "redis")  # same socket: every process reconnects
    deadline = time.monotonic() + 30
    while True:
        try:
            sdk.describe_flow(models.DescribeFlowRequest(name="logged"))
            break
        except TeaException:
            assert time.monotonic() < deadline, "the front door did not recover after Redis came back"
            time.sleep(0.2)
    for name in ("api", "timers", "worker"):
        json_lines(svc, name)
