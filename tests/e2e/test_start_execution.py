"""StartExecution exactly as the service documents it (spec 3.1), one test per rule, through the official SDK."""
from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from tests.conftest import Service

pytestmark = pytest.mark.e2e

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

ECHO = """Type: StateMachine
SpecVersion: v1
StartAt: Echo
States:
  - Type: Pass
    Name: Echo
    OutputConstructor:
      got.$: $Input
    End: true
"""
FAIL = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: Boom\n    Detail: no\n"


def version_flow(tag: str) -> str:
    return f"Type: StateMachine\nSpecVersion: v1\nStartAt: V\nStates:\n  - Type: Pass\n    Name: V\n    OutputConstructor:\n      version: {tag}\n    End: true\n"


def create(sdk: Any, name: str, definition: str = ECHO, mode: str | None = None) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL", execution_mode=mode))


def start(sdk: Any, flow: str, name: str | None = None, input: str | None = None, **kw: Any) -> Any:
    return sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=input, **kw)).body


def wait(sdk: Any, flow: str, name: str) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=30)).body


def error_of(call: Any) -> TeaException:
    with pytest.raises(TeaException) as info:
        call()
    return info.value


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    return sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events


@contextlib.contextmanager
def workers_paused(service: Service) -> Iterator[None]:
    """No worker runs inside the block, so executions stay Running; the worker comes back after."""
    service.stop("worker0")
    try:
        yield
    finally:
        service.start("worker0", "worker", "--hostname", "w0@%h")


# Rule 1 ------------------------------------------------------------------------------------------

def test_1_the_flow_must_exist(sdk: Any) -> None:
    err = error_of(lambda: start(sdk, "no_such_flow", "e"))
    assert (err.code, err.statusCode) == ("FlowNotExists", 404)
    assert "Flow no_such_flow does not exist." in err.message


def test_1_an_express_flow_is_refused(sdk: Any) -> None:
    create(sdk, "express_flow", mode="Express")
    err = error_of(lambda: start(sdk, "express_flow", "e"))
    assert (err.code, err.statusCode) == ("ActionNotSupported", 400)
    assert "StartSyncExecution" in err.message


# Rule 2 ------------------------------------------------------------------------------------------

def test_2_without_a_name_the_service_generates_a_uuid4(sdk: Any) -> None:
    create(sdk, "unnamed")
    body = start(sdk, "unnamed", input='{"a": 1}')
    assert uuid.UUID(body.name).version == 4
    assert wait(sdk, "unnamed", body.name).status == "Succeeded"


# Rule 3 ------------------------------------------------------------------------------------------

def test_3_same_name_while_in_progress_returns_the_running_execution_and_runs_once(sdk: Any, service: Service) -> None:
    create(sdk, "in_progress")
    with workers_paused(service):
        first = start(sdk, "in_progress", "dup", '{"n": 1}')
        again = start(sdk, "in_progress", "dup", '{"n": 2}')  # different input: still the running one
        assert again.to_map() | {"RequestId": ""} == first.to_map() | {"RequestId": ""}
        assert again.status == "Running" and again.input == '{"n": 1}'
    done = wait(sdk, "in_progress", "dup")
    assert done.status == "Succeeded" and json.loads(done.output) == {"got": {"n": 1}}
    types = [e.type for e in history(sdk, "in_progress", "dup")]
    assert types.count("ExecutionStarted") == 1 and types.count("StepEntered") == 1


# Rule 4 ------------------------------------------------------------------------------------------

def _ended(sdk: Any, service: Service, status: str) -> tuple[str, str]:
    flow = f"ended_{status.lower()}"
    create(sdk, flow, FAIL if status == "Failed" else ECHO)
    if status == "Stopped":
        with workers_paused(service):
            start(sdk, flow, "e1")
            sdk.stop_execution(models.StopExecutionRequest(flow_name=flow, execution_name="e1", error="Halt", cause="test"))
    else:
        start(sdk, flow, "e1")
    assert wait(sdk, flow, "e1").status == status
    return flow, "e1"


@pytest.mark.parametrize("status", ["Succeeded", "Failed", "Stopped"])
def test_4_same_name_after_the_execution_ended_is_execution_already_exists(sdk: Any, service: Service, status: str) -> None:
    flow, name = _ended(sdk, service, status)
    err = error_of(lambda: start(sdk, flow, name, '{"again": true}'))
    assert (err.code, err.statusCode) == ("ExecutionAlreadyExists", 400)
    assert f"Execution {name} for flow {flow} already exists." in err.message
    assert len(history(sdk, flow, name)) == len(history(sdk, flow, name))  # nothing new was started
    assert [e.type for e in history(sdk, flow, name)].count("ExecutionStarted") == 1


# Rule 5 ------------------------------------------------------------------------------------------

def test_5_otherwise_a_new_execution_starts(sdk: Any) -> None:
    create(sdk, "fresh")
    for name in ("a", "b"):
        assert start(sdk, "fresh", name).status == "Running"
    names = {e.name for e in sdk.list_executions(models.ListExecutionsRequest(flow_name="fresh")).body.executions}
    assert names == {"a", "b"}


# Rule 6 ------------------------------------------------------------------------------------------

def test_6_flow_name_is_required(sdk: Any) -> None:
    err = error_of(lambda: sdk.start_execution(models.StartExecutionRequest(execution_name="x")))
    assert (err.code, err.statusCode) == ("MissingRequiredParams", 400)
    assert "FlowName" in err.message


@pytest.mark.parametrize(
    "name, rule",
    [
        ("9starts_with_digit", "must start with a letter or an underscore"),
        ("-dash_first", "must start with a letter or an underscore"),
        ("has.dot", "may contain only letters, digits, underscores (_) and hyphens (-)"),
        ("has space", "may contain only letters, digits, underscores (_) and hyphens (-)"),
        ("名前", "must start with a letter or an underscore"),
        ("a" * 129, "must be 1 to 128 characters long"),
    ],
)
def test_6_execution_name_rules(sdk: Any, name: str, rule: str) -> None:
    create_once(sdk, "names")
    err = error_of(lambda: start(sdk, "names", name))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400)
    assert rule in err.message


def test_6_the_longest_and_shortest_valid_names_start(sdk: Any) -> None:
    create_once(sdk, "names")
    for name in ("_", "A" + "b" * 127, "x-y_z9"):
        assert start(sdk, "names", name).name == name


@pytest.mark.parametrize(
    "raw, kind",
    [("{not json", "not valid JSON"), ('"a string"', "not a string"), ("[1, 2]", "not an array"), ("42", "not a number"),
     ("null", "not null"), ('{"a": "\\udc80"}', "lone surrogate")],
)
def test_6_input_must_be_a_json_object(sdk: Any, raw: str, kind: str) -> None:
    create_once(sdk, "inputs")
    err = error_of(lambda: start(sdk, "inputs", "bad_input", raw))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400)
    assert "Input" in err.message and kind in err.message


def test_6_missing_input_means_an_empty_object_and_is_echoed_as_sent(sdk: Any) -> None:
    create_once(sdk, "inputs")
    body = start(sdk, "inputs", "no_input")
    assert body.input == ""
    done = wait(sdk, "inputs", "no_input")
    assert done.input == "" and json.loads(done.output) == {"got": {}}
    spaced = start(sdk, "inputs", "spaced", '{ "kept" :  "as sent" }')
    assert spaced.input == '{ "kept" :  "as sent" }'


def test_6_input_over_the_state_limit_is_entity_too_large(sdk: Any) -> None:
    create_once(sdk, "inputs")
    big = json.dumps({"blob": "x" * (64 * 1024)})
    err = error_of(lambda: start(sdk, "inputs", "too_big", big))
    assert (err.code, err.statusCode) == ("EntityTooLarge", 400)
    assert "65536" in err.message


def test_6_a_request_over_1_mib_is_entity_too_large(sdk: Any) -> None:
    create_once(sdk, "inputs")
    huge = json.dumps({"blob": "x" * (1024 * 1024 + 10)})
    err = error_of(lambda: start(sdk, "inputs", "way_too_big", huge))
    assert (err.code, err.statusCode) == ("EntityTooLarge", 400)
    assert "1048576" in err.message


_created: set[str] = set()


def create_once(sdk: Any, name: str) -> None:
    if name not in _created:
        create(sdk, name)
        _created.add(name)


# Rule 7 ------------------------------------------------------------------------------------------

def test_7_a_callback_token_this_service_did_not_issue_is_refused(sdk: Any, service: Service) -> None:
    import base64

    from common.tokens import make_token

    create_once(sdk, "inputs")
    forged = base64.b64encode(b"v1#some-flow#exec#3#AAAAAAAAAAAAAAAAAAAAAAAAAAA=").decode()
    for token in ("12", "not base64 at all!", forged, make_token("another-secret", "fid", "e", "3")):
        err = error_of(lambda token=token: start(sdk, "inputs", "with_token", callback_fn_ftask_token=token))
        assert (err.code, err.statusCode) == ("InvalidArgument", 400)
        assert "CallbackFnFTaskToken" in err.message


def test_7_a_well_signed_token_of_a_task_that_is_not_waiting_is_refused(sdk: Any, service: Service) -> None:
    from common.settings import Settings
    from common.tokens import make_token

    create_once(sdk, "inputs")
    secret = Settings(_env_file=None, **({"token_secret": service.env()["OPENFNF_TOKEN_SECRET"]} if "OPENFNF_TOKEN_SECRET" in service.env() else {})).token_secret
    token = make_token(secret, "flow-id-that-has-no-task", "exec", "7")
    err = error_of(lambda: start(sdk, "inputs", "with_token2", callback_fn_ftask_token=token))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400)
    assert "not waiting" in err.message


# Rule 8 ------------------------------------------------------------------------------------------

def _versioned(sdk: Any, flow: str) -> None:
    create(sdk, flow, version_flow("one"))
    assert sdk.publish_flow_version(models.PublishFlowVersionRequest(flow_name=flow, description="v1")).body.version == "1"
    sdk.update_flow(models.UpdateFlowRequest(name=flow, definition=version_flow("two")))
    assert sdk.publish_flow_version(models.PublishFlowVersionRequest(flow_name=flow, description="v2")).body.version == "2"
    sdk.update_flow(models.UpdateFlowRequest(name=flow, definition=version_flow("three")))


def test_8_a_version_qualifier_runs_that_versions_snapshot(sdk: Any) -> None:
    _versioned(sdk, "versioned")
    body = start(sdk, "versioned", "v1run", qualifier="1")
    assert body.flow_definition == version_flow("one")
    assert json.loads(wait(sdk, "versioned", "v1run").output) == {"version": "one"}
    assert json.loads(wait(sdk, "versioned", start(sdk, "versioned", "latest").name).output) == {"version": "three"}
    described = sdk.describe_flow(models.DescribeFlowRequest(name="versioned", flow_version="2")).body
    assert described.definition == version_flow("two")


def test_8_an_alias_routes_by_weight(sdk: Any) -> None:
    _versioned(sdk, "aliased")
    routes = json.dumps([{"Version": "1", "Weight": 25}, {"Version": "2", "Weight": 75}])
    created = sdk.create_flow_alias(models.CreateFlowAliasRequest(flow_name="aliased", name="live", routing_configurations=[
        models.CreateFlowAliasRequestRoutingConfigurations(version="1", weight=25),
        models.CreateFlowAliasRequestRoutingConfigurations(version="2", weight=75),
    ])).body
    assert [(r.version, r.weight) for r in created.routing_configurations] == [("1", 25), ("2", 75)]
    assert json.loads(routes)  # the SDK sent the same JSON list
    seen = {version_flow("one"): 0, version_flow("two"): 0}
    runs = 400
    for i in range(runs):
        seen[start(sdk, "aliased", f"r{i}", qualifier="live").flow_definition] += 1
    share = seen[version_flow("one")] / runs
    assert 0.17 < share < 0.33, seen  # 25 % expected; about 4.7 standard deviations either side
    last = wait(sdk, "aliased", f"r{runs - 1}")
    assert json.loads(last.output)["version"] in ("one", "two")


def test_8_unknown_qualifiers_are_404(sdk: Any) -> None:
    _versioned(sdk, "qualified")
    err = error_of(lambda: start(sdk, "qualified", "a", qualifier="9"))
    assert (err.code, err.statusCode) == ("FlowVersionNotExists", 404)
    err = error_of(lambda: start(sdk, "qualified", "b", qualifier="nope"))
    assert (err.code, err.statusCode) == ("FlowAliasNotExists", 404)


def test_8_version_and_alias_actions(sdk: Any) -> None:
    _versioned(sdk, "va")
    listed = sdk.list_flow_versions(models.ListFlowVersionsRequest(flow_name="va", limit="1")).body
    assert [v.version for v in listed.flow_versions] == ["1"] and listed.next_token == "2"
    rest = sdk.list_flow_versions(models.ListFlowVersionsRequest(flow_name="va", limit="5", next_token=listed.next_token)).body
    assert [v.version for v in rest.flow_versions] == ["2"] and not rest.next_token
    sdk.create_flow_alias(models.CreateFlowAliasRequest(flow_name="va", name="stable", description="d", routing_configurations=[
        models.CreateFlowAliasRequestRoutingConfigurations(version="1", weight=100)]))
    err = error_of(lambda: sdk.create_flow_alias(models.CreateFlowAliasRequest(flow_name="va", name="stable", routing_configurations=[
        models.CreateFlowAliasRequestRoutingConfigurations(version="1", weight=100)])))
    assert (err.code, err.statusCode) == ("FlowAliasAlreadyExists", 409)
    for weights in ([50, 40], [100, 0, 0]):
        bad = [models.CreateFlowAliasRequestRoutingConfigurations(version=str(i + 1), weight=w) for i, w in enumerate(weights)]
        err = error_of(lambda bad=bad: sdk.create_flow_alias(models.CreateFlowAliasRequest(flow_name="va", name="bad", routing_configurations=bad)))
        assert (err.code, err.statusCode) == ("InvalidArgument", 400)
    updated = sdk.update_flow_alias(models.UpdateFlowAliasRequest(flow_name="va", name="stable", routing_configurations=[
        models.UpdateFlowAliasRequestRoutingConfigurations(version="2", weight=100)])).body.alias
    assert updated.description == "d" and [(r.version, r.weight) for r in updated.routing_configurations] == [("2", 100)]
    described = sdk.describe_flow_alias(models.DescribeFlowAliasRequest(flow_name="va", name="stable")).body.alias
    assert described.name == "stable" and described.routing_configurations[0].version == "2"
    aliases = sdk.list_flow_aliases(models.ListFlowAliasesRequest(flow_name="va")).body.aliases
    assert [(a.name, a.routing_configurations[0].weight) for a in aliases] == [("stable", "100")]
    err = error_of(lambda: sdk.delete_flow_version(models.DeleteFlowVersionRequest(flow_name="va", flow_version="2")))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "stable" in err.message
    sdk.delete_flow_version(models.DeleteFlowVersionRequest(flow_name="va", flow_version="1"))
    sdk.delete_flow_alias(models.DeleteFlowAliasRequest(flow_name="va", name="stable"))
    err = error_of(lambda: sdk.describe_flow_alias(models.DescribeFlowAliasRequest(flow_name="va", name="stable")))
    assert (err.code, err.statusCode) == ("FlowAliasNotExists", 404)
    assert [v.version for v in sdk.list_flow_versions(models.ListFlowVersionsRequest(flow_name="va")).body.flow_versions] == ["2"]


# Rule 9 ------------------------------------------------------------------------------------------

def test_9_the_response_has_every_documented_field_and_describe_agrees(sdk: Any) -> None:
    create_once(sdk, "inputs")
    body = start(sdk, "inputs", "fields", '{"k": "v"}')
    raw = body.to_map()
    for field in ("Name", "FlowName", "FlowDefinition", "Input", "Output", "Status", "StartedTime", "StoppedTime", "RequestId"):
        assert field in raw and isinstance(raw[field], str), field
    assert RFC3339_MS.match(body.started_time)
    described = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="inputs", execution_name="fields")).body
    for attr in ("name", "flow_name", "flow_definition", "input", "started_time"):
        assert getattr(described, attr) == getattr(body, attr), attr
    done = wait(sdk, "inputs", "fields")
    assert RFC3339_MS.match(done.stopped_time) and done.stopped_time >= done.started_time
