"""The running-executions cap: StartExecution is refused while the account runs the most it may."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from alibabacloud_tea_openapi.exceptions import ThrottlingException

from common import runcount
from common.settings import Settings
from tests.conftest import Service, running_service

pytestmark = pytest.mark.e2e

FLOW = "Type: StateMachine\nSpecVersion: v1\nName: capped\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service allowing 2 running executions per account, started without workers (so they stay Running)."""
    with running_service(tmp_path_factory.mktemp("cap"), workers=0, timers=1, OPENFNF_MAX_RUNNING_EXECUTIONS="2") as svc:
        yield svc


def running(rdb: redis.Redis) -> int:
    """The account's running count: the sum of its shards (common/runcount.py)."""
    return runcount.read_total_sync(rdb, "1234567890", Settings().running_shards)


def start(sdk: Any, name: str) -> Any:
    return sdk.start_execution(models.StartExecutionRequest(flow_name="capped", execution_name=name)).body


def test_the_cap_refuses_then_admits_once_executions_end(capped: Service) -> None:
    sdk = capped.client()
    sdk.create_flow(models.CreateFlowRequest(name="capped", definition=FLOW, description="t", type="FDL"))
    rdb = redis.Redis.from_url(capped.redis_url)
    assert start(sdk, "r1").status == "Running"
    assert start(sdk, "r1").name == "r1"  # the running one again: it counts once
    assert running(rdb) == 1
    assert start(sdk, "r2").status == "Running"
    with pytest.raises(ThrottlingException) as refused:
        start(sdk, "r3")
    exc = refused.value
    assert exc.status_code == 429 and exc.code == "ResourceThrottled" and exc.retry_after == 1000
    assert "account 1234567890 has 2 running executions, the limit is 2" in exc.message
    with pytest.raises(ThrottlingException):  # nothing was claimed: the name r3 is still free, and refused again
        start(sdk, "r3")
    with pytest.raises(ThrottlingException):  # at the cap even the name of a running one is refused (documented)
        start(sdk, "r1")
    assert running(rdb) == 2  # the refused ones did not count
    capped.start("worker", "worker", "--hostname", "capw@%h")  # now the two run to their end ...
    deadline = time.monotonic() + 30
    while True:  # ... and the account may start again
        try:
            assert start(sdk, "r3").name == "r3"
            break
        except ThrottlingException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="capped", execution_name="r3", wait_time_seconds=20)).body
    assert done.status == "Succeeded"
    for name in ("r1", "r2"):
        assert sdk.describe_execution(models.DescribeExecutionRequest(flow_name="capped", execution_name=name)).body.status == "Succeeded"
    deadline = time.monotonic() + 10
    while running(rdb) != 0:  # every end was counted once
        assert time.monotonic() < deadline, running(rdb)
        time.sleep(0.05)
    rdb.close()
