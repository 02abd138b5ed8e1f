"""DescribeMapRun and UpdateMapRun are authorised like every action: `fnf:DescribeMapRun` /
`fnf:UpdateMapRun` on the flow (issue 16)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from tests.conftest import Service, new_sdk_client, running_service
from tests.frontdoor import KEYS, write_credentials

pytestmark = pytest.mark.e2e

FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: M
States:
  - Type: Map
    Name: M
    ItemsPath: $Input.xs
    ProcessorConfig: {ExecutionMode: Express}
    Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}
    End: true
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("dmappolicy")
    creds = write_credentials(tmp / "credentials.yaml")
    with running_service(tmp, workers=1, timers=1, OPENFNF_CREDENTIALS=str(creds)) as service:
        yield service


def sdk(svc: Service, key_id: str) -> Any:
    return new_sdk_client(svc.endpoint, key_id, KEYS[key_id][0])


def _run(admin: Any, flow: str) -> tuple[str, str]:
    admin.create_flow(models.CreateFlowRequest(name=flow, definition=FLOW, description="", type="FDL"))
    name = admin.start_execution(models.StartExecutionRequest(flow_name=flow, input=json.dumps({"xs": [1, 2]}))).body.name
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = admin.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name)).body.events
        for e in events:
            if e.type == "MapRunStarted":
                return name, str(json.loads(e.event_detail)["output"]["MapRunName"])
        time.sleep(0.05)
    raise AssertionError("no MapRunStarted")


def fails(call: Any, code: str, status: int) -> None:
    with pytest.raises(TeaException) as info:
        call()
    assert (info.value.code, info.value.statusCode) == (code, status), info.value.message


def test_map_run_actions_follow_the_policies(svc: Service) -> None:
    admin, orders = sdk(svc, "AKA"), sdk(svc, "AKORDERS")  # AKORDERS: StartExecution + Describe* on flow/orders-*
    name, run = _run(admin, "orders-dmap")
    other, other_run = _run(admin, "billing-dmap")
    got = orders.describe_map_run(models.DescribeMapRunRequest(flow_name="orders-dmap", execution_name=name, map_run_name=run)).body
    assert got.map_run_name == run
    fails(lambda: orders.update_map_run(models.UpdateMapRunRequest(flow_name="orders-dmap", execution_name=name, map_run_name=run, concurrency=2)), "AccessDenied", 403)
    fails(lambda: orders.describe_map_run(models.DescribeMapRunRequest(flow_name="billing-dmap", execution_name=other, map_run_name=other_run)), "AccessDenied", 403)
    fails(lambda: sdk(svc, "AKB").describe_map_run(models.DescribeMapRunRequest(flow_name="orders-dmap", execution_name=name, map_run_name=run)), "FlowNotExists", 404)
