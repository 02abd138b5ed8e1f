"""StartSyncExecution and the Express limits through the official SDK, on real processes."""
from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys
from common.settings import Settings
from openfnf.redisserver import free_port
from tests.conftest import Service, new_sdk_client

pytestmark = pytest.mark.e2e

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
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
FAIL = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: Boom\n    Detail: it broke\n"


def create(sdk: Any, name: str, definition: str = ECHO, mode: str | None = "Express", **kw: Any) -> Any:
    return sdk.create_flow(
        models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL", execution_mode=mode, **kw)
    ).body


def run(sdk: Any, flow: str, name: str | None = None, input: str | None = None, **kw: Any) -> Any:
    return sdk.start_sync_execution(models.StartSyncExecutionRequest(flow_name=flow, execution_name=name, input=input, **kw)).body


def error_of(call: Callable[[], Any]) -> TeaException:
    with pytest.raises(TeaException) as info:
        call()
    return info.value


def test_runs_on_the_workers_and_answers_with_the_end(sdk: Any) -> None:
    create(sdk, "express_echo")
    body = run(sdk, "express_echo", "order_1", '{"id": 42}')
    assert body.status == "Succeeded"
    assert json.loads(body.output) == {"got": {"id": 42}}
    assert re.fullmatch(rf"order_1:{UUID}", body.name), body.name  # `{ExecutionName}:{UUID}`
    assert body.flow_name == "express_echo"
    assert RFC3339_MS.match(body.started_time) and RFC3339_MS.match(body.stopped_time)
    assert body.stopped_time >= body.started_time
    assert (body.error_code, body.error_message) == ("", "")
    assert body.request_id


def test_names_need_not_be_unique_and_are_generated_without_one(sdk: Any) -> None:
    create(sdk, "express_names")
    first, second = run(sdk, "express_names", "same"), run(sdk, "express_names", "same")
    assert first.name != second.name and first.name.startswith("same:") and second.name.startswith("same:")
    assert first.status == second.status == "Succeeded"
    anonymous = run(sdk, "express_names")
    assert re.fullmatch(UUID, anonymous.name) and anonymous.status == "Succeeded"
    assert json.loads(anonymous.output) == {"got": {}}  # no Input: an empty object


def test_concurrent_calls_each_get_their_own_end(sdk: Any, service: Service) -> None:
    create(sdk, "express_many")
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        results[i] = run(service.client(), "express_many", "c", json.dumps({"i": i}))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(8))
    assert all(json.loads(results[i].output) == {"got": {"i": i}} for i in range(8))
    assert len({r.name for r in results.values()}) == 8


def test_the_older_sdk_runs_it_too(sdk: Any, service: Service) -> None:
    from aliyunsdkfnf.request.v20190315 import StartSyncExecutionRequest

    create(sdk, "express_old_sdk")
    request = StartSyncExecutionRequest.StartSyncExecutionRequest()
    request.set_FlowName("express_old_sdk")
    request.set_ExecutionName("old")
    request.set_Input('{"o": 1}')
    request.set_endpoint(service.endpoint)
    request.set_protocol_type("http")
    body = json.loads(service.old_client().do_action_with_exception(request))
    assert body["Status"] == "Succeeded" and json.loads(body["Output"]) == {"got": {"o": 1}}
    assert body["Name"].startswith("old:")


def test_a_failed_execution_answers_its_error(sdk: Any) -> None:
    create(sdk, "express_fail", FAIL)
    body = run(sdk, "express_fail", "f")
    assert (body.status, body.error_code, body.error_message, body.output) == ("Failed", "Boom", "it broke", "")
    assert RFC3339_MS.match(body.stopped_time)


def test_the_flow_environment_is_answered(sdk: Any) -> None:
    env = models.CreateFlowRequestEnvironment(variables=[models.CreateFlowRequestEnvironmentVariables(name="A", value="1")])
    create(sdk, "express_env", environment=env)
    body = run(sdk, "express_env")
    assert body.environment.variables[0].name == "A" and body.environment.variables[0].value == "1"


def test_a_standard_flow_is_refused(sdk: Any) -> None:
    create(sdk, "standard_flow", mode=None)
    err = error_of(lambda: run(sdk, "standard_flow", "e"))
    assert (err.code, err.statusCode) == ("ActionNotSupported", 400)
    assert "Standard execution is not supported" in err.message and "StartExecution" in err.message
    # and StartExecution refuses the Express flow the other way round
    create(sdk, "express_only")
    err = error_of(lambda: sdk.start_execution(models.StartExecutionRequest(flow_name="express_only")))
    assert (err.code, err.statusCode) == ("ActionNotSupported", 400) and "StartSyncExecution" in err.message


def test_parameters_are_checked(sdk: Any) -> None:
    create(sdk, "express_params")
    err = error_of(lambda: run(sdk, "no_such_flow"))
    assert (err.code, err.statusCode) == ("FlowNotExists", 404)
    err = error_of(lambda: run(sdk, "express_params", "9bad"))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "ExecutionName" in err.message
    err = error_of(lambda: run(sdk, "express_params", "ok", "[1]"))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "Input" in err.message
    err = error_of(lambda: run(sdk, "express_params", "ok", json.dumps({"x": "y" * 70000})))
    assert (err.code, err.statusCode) == ("EntityTooLarge", 400)
    err = error_of(lambda: run(sdk, "express_params", "ok", qualifier="7"))
    assert (err.code, err.statusCode) == ("FlowVersionNotExists", 404)


def test_a_published_version_runs_by_qualifier(sdk: Any) -> None:
    create(sdk, "express_versions")
    sdk.publish_flow_version(models.PublishFlowVersionRequest(flow_name="express_versions"))
    body = run(sdk, "express_versions", "v", '{"v": 1}', qualifier="1")
    assert body.status == "Succeeded" and json.loads(body.output) == {"got": {"v": 1}}


WAIT_30 = """Type: StateMachine
SpecVersion: v1
StartAt: W
States:
  - Type: Wait
    Name: W
    Seconds: 30
    End: true
"""
CALLBACK = """Type: StateMachine
SpecVersion: v1
StartAt: P
States:
  - Type: Parallel
    Name: P
    End: true
    Branches:
      - StartAt: T
        States:
          - Type: Task
            Name: T
            Action: FC:InvokeFunction
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fc:::functions/f/LATEST
            End: true
"""
OLD_CALLBACK = """version: v1
type: flow
steps:
  - type: task
    name: t
    resourceArn: acs:fc:::services/s/functions/f
    pattern: waitForCallback
"""
LONG = "Type: StateMachine\nSpecVersion: v1\nTimeout: 600\nStartAt: P\nStates:\n  - Type: Pass\n    Name: P\n    End: true\n"


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (WAIT_30, "States[0] (W): a Wait state of an Express flow waits 1 to 20 seconds, not 30."),
        (CALLBACK, "States[0] (P).Branches[0].States[0] (T): TaskMode WaitForCustomCallback is not available in Express flows"),
        (OLD_CALLBACK, "steps[0] (t): pattern waitForCallback is not available in Express flows"),
        (LONG, "Timeout 600 is over the Express limit: an Express execution runs for at most 300 seconds."),
    ],
)
def test_express_limits_are_checked_when_the_flow_is_written(sdk: Any, definition: str, message: str) -> None:
    name = f"limits_{uuid.uuid4().hex[:8]}"
    err = error_of(lambda: create(sdk, name, definition))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400)
    assert "Definition is invalid for an Express flow" in err.message and message in err.message, err.message
    create(sdk, name)
    err = error_of(lambda: sdk.update_flow(models.UpdateFlowRequest(name=name, definition=definition)))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and message in err.message


WAIT_20 = WAIT_30.replace("Seconds: 30", "Seconds: 20")


def test_the_time_limit_ends_the_execution_and_the_call_answers(sdk: Any, service: Service) -> None:
    """A front door with a 1-second Express limit: the timers process delivers the time-limit stop,
    the worker ends the execution, the call answers; with no worker at all it answers after the limit
    and the grace with the execution as it is."""
    create(sdk, "express_slow", WAIT_20)
    port = free_port()
    service.start("api_short", "api", "--port", str(port),
                  env={"OPENFNF_EXPRESS_TIMEOUT_SECONDS": "1", "OPENFNF_EXPRESS_GRACE_SECONDS": "1"})  # fmt: skip
    short = new_sdk_client(f"127.0.0.1:{port}", service.key_id, service.secret)
    try:
        body = run(short, "express_slow", "slow")
        assert (body.status, body.error_code) == ("Stopped", "FnF.Timeout")
        assert body.error_message == "The Express execution did not end within 1 seconds."
        assert RFC3339_MS.match(body.stopped_time)
        service.stop("worker0", sig=signal.SIGKILL)  # quicker than a warm shutdown; a new worker takes over below
        try:
            body = run(short, "express_slow", "stuck")
            assert (body.status, body.stopped_time) == ("Running", "")
            state = redis.Redis.from_url(service.redis_url)
            flow_id = state.hget(keys.flow(Settings().account_id, "express_slow"), "Id").decode()
            inbox_key = keys.inbox(keys.execution_tag(flow_id, body.name))
            stop = {"t": "StopRequested", "error": "FnF.Timeout", "cause": "The Express execution did not end within 1 seconds."}
            deadline = time.monotonic() + 20
            while stop not in (inbox := [json.loads(e) for e in state.lrange(inbox_key, 0, -1)]):
                assert time.monotonic() < deadline, inbox
                time.sleep(0.05)
            assert inbox[0]["t"] == "Started"  # the timers process delivered the stop; a worker applies it
        finally:
            service.start("worker0", "worker", "--hostname", "w0@%h")
    finally:
        service.stop("api_short")
