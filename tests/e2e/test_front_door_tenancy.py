"""Accounts, policies and key reloads end to end: `openfnf api` as a process, a credentials file with two
accounts, driven by both official SDKs."""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alibabacloud_fnf20190315 import models
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkfnf.request.v20190315 import DescribeFlowRequest, StartExecutionRequest
from Tea.exceptions import TeaException

from openfnf.redisserver import free_port
from tests.conftest import Service, new_sdk_client, running_service, wait_for_port
from tests.frontdoor import KEYS, PASS_FLOW, credentials_doc, write_credentials

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("tenancy")
    creds = write_credentials(tmp / "credentials.yaml")
    with running_service(tmp, workers=0, timers=0, OPENFNF_CREDENTIALS=str(creds)) as service:
        yield service


def sdk(svc: Service, key_id: str) -> Any:
    return new_sdk_client(svc.endpoint, key_id, KEYS[key_id][0])


def fails(call: Any, code: str, status: int) -> str:
    with pytest.raises(TeaException) as info:
        call()
    assert (info.value.code, info.value.statusCode) == (code, status), info.value.message
    return str(info.value.message)


def test_two_accounts_own_flows_of_the_same_name(svc: Service) -> None:
    a, b = sdk(svc, "AKA"), sdk(svc, "AKB")
    def_a, def_b = PASS_FLOW.format(name="twin"), PASS_FLOW.format(name="twin") + "# B's own\n"
    a.create_flow(models.CreateFlowRequest(name="twin", definition=def_a, description="A", type="FDL"))
    fails(lambda: b.describe_flow(models.DescribeFlowRequest(name="twin")), "FlowNotExists", 404)
    b.create_flow(models.CreateFlowRequest(name="twin", definition=def_b, description="B", type="FDL"))
    assert a.describe_flow(models.DescribeFlowRequest(name="twin")).body.definition == def_a
    assert b.describe_flow(models.DescribeFlowRequest(name="twin")).body.definition == def_b
    a.create_flow(models.CreateFlowRequest(name="only_a", definition=PASS_FLOW.format(name="only_a"), description="", type="FDL"))
    names_b = [f.name for f in b.list_flows(models.ListFlowsRequest()).body.flows]
    assert "twin" in names_b and "only_a" not in names_b
    # B can neither change nor delete A's flow: for B it does not exist.
    fails(lambda: b.update_flow(models.UpdateFlowRequest(name="only_a", description="x")), "FlowNotExists", 404)
    fails(lambda: b.delete_flow(models.DeleteFlowRequest(name="only_a")), "FlowNotExists", 404)
    assert a.describe_flow(models.DescribeFlowRequest(name="only_a")).body.description == ""


def test_executions_versions_and_aliases_stay_in_their_account(svc: Service) -> None:
    a, b = sdk(svc, "AKA"), sdk(svc, "AKB")
    for c in (a, b):
        c.create_flow(models.CreateFlowRequest(name="runs", definition=PASS_FLOW.format(name="runs"), description="", type="FDL"))
    a.create_flow(models.CreateFlowRequest(name="runs_a", definition=PASS_FLOW.format(name="runs_a"), description="", type="FDL"))
    a.start_execution(models.StartExecutionRequest(flow_name="runs", execution_name="secret_run", input='{"pin": 1234}'))
    a.start_execution(models.StartExecutionRequest(flow_name="runs_a", execution_name="e"))
    # Same flow name in B: A's execution does not exist there.
    fails(lambda: b.describe_execution(models.DescribeExecutionRequest(flow_name="runs", execution_name="secret_run")), "ExecutionNotExists", 404)
    fails(lambda: b.get_execution_history(models.GetExecutionHistoryRequest(flow_name="runs", execution_name="secret_run")), "ExecutionNotExists", 404)
    fails(lambda: b.stop_execution(models.StopExecutionRequest(flow_name="runs", execution_name="secret_run")), "ExecutionNotExists", 404)
    assert b.list_executions(models.ListExecutionsRequest(flow_name="runs")).body.executions == []
    # A flow only A has: for B the flow itself does not exist.
    fails(lambda: b.describe_execution(models.DescribeExecutionRequest(flow_name="runs_a", execution_name="e")), "FlowNotExists", 404)
    # B may start an execution of the same name in its own flow: names are per account and flow.
    started = b.start_execution(models.StartExecutionRequest(flow_name="runs", execution_name="secret_run", input='{"b": 1}')).body
    assert started.input == '{"b": 1}'
    assert a.describe_execution(models.DescribeExecutionRequest(flow_name="runs", execution_name="secret_run")).body.input == '{"pin": 1234}'
    # Versions and aliases.
    version = a.publish_flow_version(models.PublishFlowVersionRequest(flow_name="runs", description="A's v")).body.version
    a.create_flow_alias(
        models.CreateFlowAliasRequest(flow_name="runs", name="live", routing_configurations=[models.CreateFlowAliasRequestRoutingConfigurations(version=version, weight=100)])
    )
    assert b.list_flow_versions(models.ListFlowVersionsRequest(flow_name="runs")).body.flow_versions in ([], None)
    assert b.list_flow_aliases(models.ListFlowAliasesRequest(flow_name="runs")).body.aliases in ([], None)
    with pytest.raises(TeaException) as info:
        b.describe_flow_alias(models.DescribeFlowAliasRequest(flow_name="runs", name="live"))
    assert info.value.statusCode == 404
    with pytest.raises(TeaException) as info:
        b.start_execution(models.StartExecutionRequest(flow_name="runs", execution_name="q", qualifier="live"))
    assert info.value.statusCode == 404


def test_policies_through_both_sdks(svc: Service) -> None:
    admin, orders = sdk(svc, "AKA"), sdk(svc, "AKORDERS")
    for name in ("orders-eu", "billing"):
        admin.create_flow(models.CreateFlowRequest(name=name, definition=PASS_FLOW.format(name=name), description="", type="FDL"))
    assert orders.start_execution(models.StartExecutionRequest(flow_name="orders-eu", execution_name="o1")).body.name == "o1"
    assert orders.describe_execution(models.DescribeExecutionRequest(flow_name="orders-eu", execution_name="o1")).body.name == "o1"
    assert orders.describe_flow(models.DescribeFlowRequest(name="orders-eu")).body.name == "orders-eu"
    message = fails(lambda: orders.start_execution(models.StartExecutionRequest(flow_name="billing")), "AccessDenied", 403)
    assert "The resources doesn't belong to you." in message
    fails(lambda: orders.delete_flow(models.DeleteFlowRequest(name="orders-eu")), "AccessDenied", 403)
    fails(lambda: orders.stop_execution(models.StopExecutionRequest(flow_name="orders-eu", execution_name="o1")), "AccessDenied", 403)
    fails(lambda: sdk(svc, "AKDENY").describe_flow(models.DescribeFlowRequest(name="secret-x")), "AccessDenied", 403)
    fails(lambda: sdk(svc, "AKNONE").list_flows(models.ListFlowsRequest()), "AccessDenied", 403)
    fails(lambda: sdk(svc, "AKOFF").list_flows(models.ListFlowsRequest()), "InvalidAccessKeyID", 403)
    # The older SDK (aliyunsdkcore) sees the same codes.
    old = AcsClient("AKORDERS", KEYS["AKORDERS"][0], "cn-hangzhou")
    request = StartExecutionRequest.StartExecutionRequest()
    request.set_FlowName("billing")
    request.set_endpoint(svc.endpoint)
    request.set_protocol_type("http")
    with pytest.raises(ServerException) as old_info:
        old.do_action_with_exception(request)
    assert (old_info.value.get_error_code(), old_info.value.get_http_status()) == ("AccessDenied", 403)
    describe = DescribeFlowRequest.DescribeFlowRequest()
    describe.set_Name("orders-eu")
    describe.set_endpoint(svc.endpoint)
    describe.set_protocol_type("http")
    assert json.loads(old.do_action_with_exception(describe))["Name"] == "orders-eu"


def test_sighup_reloads_the_credentials_file(svc: Service, tmp_path: Path) -> None:
    """A second front door started with --credentials and no polling: only SIGHUP brings the new key in."""
    creds = write_credentials(tmp_path / "hup.yaml")
    port = free_port()
    svc.start("api_hup", "api", "--port", str(port), "--credentials", str(creds), env={"OPENFNF_CREDENTIALS_POLL_SECONDS": "3600"})
    wait_for_port(port, svc.procs["api_hup"])
    endpoint = f"127.0.0.1:{port}"
    new_id, new_secret = "AKHUP", "secret-hup-0123456"
    newcomer = new_sdk_client(endpoint, new_id, new_secret)
    fails(lambda: newcomer.list_flows(models.ListFlowsRequest()), "InvalidAccessKeyID", 403)
    doc = credentials_doc({new_id: (new_secret, "1111111111")})
    creds.write_text(yaml.safe_dump(doc))
    fails(lambda: newcomer.list_flows(models.ListFlowsRequest()), "InvalidAccessKeyID", 403)  # no polling: not yet
    svc.procs["api_hup"].send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while True:  # wait for the reload to land (a condition, bounded), not for a fixed time
        try:
            newcomer.list_flows(models.ListFlowsRequest())
            break
        except TeaException as exc:
            assert exc.code == "InvalidAccessKeyID"
            assert time.monotonic() < deadline, "SIGHUP did not reload the credentials"
            time.sleep(0.05)
    assert svc.procs["api_hup"].poll() is None  # SIGHUP reloads; it does not stop the process
    assert "credentials reloaded" in svc.log("api_hup")
    svc.stop("api_hup")
