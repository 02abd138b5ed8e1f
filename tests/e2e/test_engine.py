"""The durable engine through the official SDK: functions, HTTP tasks, retry/catch, timeouts, callbacks,
child flows, waits, stop and flow timeouts, parallel and Map concurrency (issue 6)."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys
from openfnf.redisserver import free_port
from tests.conftest import ROOT, Service, running_service

pytestmark = pytest.mark.e2e

FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("engine"), workers=2, OPENFNF_FUNCTIONS=str(FUNCTIONS)) as svc:
        yield svc


@pytest.fixture(scope="module")
def sdk(engine: Service) -> Any:
    return engine.client()


def run(sdk: Any, flow: str, definition: str, input: dict[str, Any] | None = None, name: str = "e1", wait: int = 40) -> Any:
    """Create the flow (once), start it, long-poll it to its end."""
    try:
        sdk.create_flow(models.CreateFlowRequest(name=flow, definition=definition, description="", type="FDL"))
    except TeaException as err:
        if err.code != "FlowAlreadyExists":
            raise
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=json.dumps(input or {})))
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=wait)).body


def history_types(sdk: Any, flow: str, name: str = "e1") -> list[str]:
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    return [e.type for e in events]


def failure(sdk: Any, flow: str, name: str = "e1") -> dict[str, Any]:
    """The error and cause of a failed execution, from its last history event."""
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events
    assert events[-1].type == "ExecutionFailed", events[-1].type
    return dict(json.loads(events[-1].event_detail))


def output(body: Any) -> Any:
    assert body.status == "Succeeded", (body.status, body.to_map())
    return json.loads(body.output)


# ---------------------------------------------------------------------------------- functions

def test_old_syntax_function_task(sdk: Any) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: sum
    resourceArn: acs:fc:::services/demo/functions/add
    inputMappings:
      - {target: a, source: $input.x}
      - {target: b, source: 10}
"""
    assert output(run(sdk, "old_fn", flow, {"x": 5})) == {"sum": 15}
    types = history_types(sdk, "old_fn")
    assert types.count("TaskScheduled") == 1 and types.count("TaskSucceeded") == 1


def test_new_syntax_invoke_function_body(sdk: Any) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Sum
States:
  - Type: Task
    Name: Sum
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
      body:
        a.$: $Input.x
        b: 1
    OutputConstructor:
      total.$: $Output.Body.sum
    End: true
"""
    assert output(run(sdk, "new_fn", flow, {"x": 2})) == {"total": 3}


def test_a_json_string_result_is_parsed(sdk: Any) -> None:
    flow = "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: t\n    resourceArn: acs:fc:::services/demo/functions/json_text\n"
    assert output(run(sdk, "json_text", flow, {"n": 3})) == {"book_flight": "success", "n": 3}


def test_retry_then_catch_a_custom_error(sdk: Any) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: book
    resourceArn: acs:fc:::services/demo/functions/fails
    retry:
      - errors: [BookFlightError]
        intervalSeconds: 1
        maxAttempts: 2
        multiplier: 1
    catch:
      - errors: [BookFlightError]
        goto: compensate
  - type: pass
    name: skipped
    outputMappings: [{target: skipped, source: true}]
  - type: pass
    name: compensate
    outputMappings: [{target: compensated, source: true}]
"""
    out = output(run(sdk, "retry_catch", flow))
    assert out.get("compensated") is True and "skipped" not in out
    types = history_types(sdk, "retry_catch")
    assert types.count("TaskFailed") == 3  # the first attempt and two retries


def test_an_unknown_function_fails_the_task_clearly(sdk: Any) -> None:
    flow = "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: t\n    resourceArn: acs:fc:::services/nowhere/functions/none\n"
    body = run(sdk, "unknown_fn", flow)
    assert body.status == "Failed"
    assert failure(sdk, "unknown_fn")["error"] == "FnF.FunctionNotFound"


def test_a_slow_function_times_out_and_is_caught(sdk: Any) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Slow
States:
  - Type: Task
    Name: Slow
    Action: FC:InvokeFunction
    Timeout: 1
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/slow/LATEST
      body: {seconds: 3}
    Catch:
      - Errors: [FnF.TaskTimeout]
        Next: Late
    End: true
  - Type: Pass
    Name: Late
    OutputConstructor:
      late: true
    End: true
"""
    assert output(run(sdk, "timeout", flow)) == {"late": True}
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="timeout", execution_name="e1")).body.events
    # The task's timer ends it; the worker's own call limit only frees the worker (worker/activities.py).
    ended = [e for e in events if e.type in ("TaskTimedOut", "TaskFailed")]
    assert [e.type for e in ended] == ["TaskTimedOut"] and "FnF.TaskTimeout" in ended[0].event_detail


def test_a_result_that_is_not_json_fails_the_task_and_catch_sees_it(sdk: Any) -> None:
    """Too deep for OPENFNF_MAX_JSON_DEPTH (64) or NaN: FnF.InvalidTaskResult, caught; the workers run on."""
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Call
States:
  - Type: Task
    Name: Call
    Action: FC:InvokeFunction
    Parameters:
      resourceArn.$: $Input.arn
      body.$: $Input.body
    Catch:
      - Errors: [FnF.InvalidTaskResult]
        OutputConstructor:
          refused.$: $Context.Current.Error.Code
        Next: Refused
    End: true
  - Type: Pass
    Name: Refused
    End: true
"""
    deep = {"arn": "acs:fc:cn-hangzhou:123:functions/nested/LATEST", "body": {"depth": 3000}}
    assert output(run(sdk, "invalid_result", flow, deep, name="deep")) == {"refused": "FnF.InvalidTaskResult"}
    nan = {"arn": "acs:fc:cn-hangzhou:123:functions/not_json/LATEST", "body": {"kind": "nan_text"}}
    assert output(run(sdk, "invalid_result", flow, nan, name="nan")) == {"refused": "FnF.InvalidTaskResult"}
    fine = {"arn": "acs:fc:cn-hangzhou:123:functions/nested/LATEST", "body": {"depth": 3}}
    assert output(run(sdk, "invalid_result", flow, fine, name="fine")) == {"Body": [[[1]]]}


# ---------------------------------------------------------------------------------- HTTP tasks

class _Http(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"path": self.path}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_http_request_task(sdk: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Http)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flow = f"""Type: StateMachine
SpecVersion: v1
StartAt: Call
States:
  - Type: Task
    Name: Call
    Action: HTTP:Request
    Parameters:
      method: GET
      url: http://127.0.0.1:{server.server_address[1]}/orders
      query:
        id.$: $Input.id
    OutputConstructor:
      status.$: $Output.StatusCode
      path.$: $Output.Body.path
    End: true
"""
        assert output(run(sdk, "http_task", flow, {"id": 7})) == {"status": 201, "path": "/orders?id=7"}
        refused = flow.replace(str(server.server_address[1]), str(free_port()))
        body = run(sdk, "http_refused", refused, {"id": 1})
        assert body.status == "Failed" and failure(sdk, "http_refused")["error"] == "HTTP.ConnectionError"
    finally:
        server.shutdown()


# ---------------------------------------------------------------------------------- callbacks

def test_a_function_reports_its_own_callback_token(sdk: Any) -> None:
    """The spec's callback example: the task waits until the function calls ReportTaskSucceeded."""
    flow = """version: v1
type: flow
steps:
  - type: task
    name: approve
    resourceArn: acs:fc:::services/demo/functions/report_token
    pattern: waitForCallback
    inputMappings:
      - {target: token, source: $context.task.token}
      - {target: order, source: $input.order}
    outputMappings:
      - {target: approved, source: $local.approved}
      - {target: order, source: $local.for}
"""
    assert output(run(sdk, "callback_old", flow, {"order": "o-1"})) == {"approved": True, "order": "o-1"}


def test_report_task_failed_goes_through_catch(sdk: Any) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Review
States:
  - Type: Task
    Name: Review
    Action: FC:InvokeFunction
    TaskMode: WaitForCustomCallback
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/report_failure/LATEST
      body:
        token.$: $Context.Current.TaskToken
    Catch:
      - Errors: [Rejected]
        Next: Handle
    End: true
  - Type: Pass
    Name: Handle
    OutputConstructor:
      handled: true
    End: true
"""
    assert output(run(sdk, "callback_new", flow)) == {"handled": True}


WAITING = """version: v1
type: flow
steps:
  - type: task
    name: wait_for_me
    resourceArn: acs:fc:::services/demo/functions/keep_token
    pattern: waitForCallback
    inputMappings:
      - {target: token, source: $context.task.token}
"""


def _token(engine: Service) -> str:
    got = redis.Redis.from_url(engine.redis_url).blpop("test:tokens", timeout=30)
    assert got is not None, "the function never received its token"
    return got[1].decode()


def test_reports_are_delivered_once_and_forged_tokens_refused(sdk: Any, engine: Service) -> None:
    sdk.create_flow(models.CreateFlowRequest(name="held", definition=WAITING, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="held", execution_name="e1"))
    token = _token(engine)
    with pytest.raises(TeaException) as info:
        sdk.report_task_succeeded(models.ReportTaskSucceededRequest(task_token=token[:-4] + "AAA=", output="{}"))
    assert (info.value.code, info.value.statusCode) == ("InvalidArgument", 400)
    sdk.report_task_succeeded(models.ReportTaskSucceededRequest(task_token=token, output='{"ok": 1}'))
    with pytest.raises(TeaException) as info:
        sdk.report_task_failed(models.ReportTaskFailedRequest(task_token=token, error="Late", cause="too late"))
    assert (info.value.code, info.value.statusCode) == ("TaskAlreadyCompleted", 400)
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="held", execution_name="e1", wait_time_seconds=30)).body
    assert output(done) == {"ok": 1}
    # The task's mark (a late report: TaskAlreadyCompleted) lasts as long as the execution, no longer.
    tag = keys.execution_tag(sdk.describe_flow(models.DescribeFlowRequest(name="held")).body.id, "e1")
    r = redis.Redis.from_url(engine.redis_url)
    assert b"done" in r.hvals(keys.tasks(tag))
    assert 0 < r.ttl(keys.tasks(tag)) <= r.ttl(keys.execution(tag)) + 1


def test_start_execution_with_a_waiting_token_reports_its_end_to_it(sdk: Any, engine: Service) -> None:
    """Issue 3 rule 7 and CallbackFnFTaskToken: the child's end completes the parent's waiting task."""
    sdk.create_flow(models.CreateFlowRequest(name="waits_for_child", definition=WAITING, description="", type="FDL"))
    sdk.create_flow(models.CreateFlowRequest(name="by_token", definition="Type: StateMachine\nSpecVersion: v1\nStartAt: P\nStates:\n  - Type: Pass\n    Name: P\n    End: true\n", description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="waits_for_child", execution_name="e1"))
    token = _token(engine)
    child = sdk.start_execution(models.StartExecutionRequest(flow_name="by_token", execution_name="c1", input='{"from": "child"}', callback_fn_ftask_token=token)).body
    assert child.status == "Running"
    parent = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="waits_for_child", execution_name="e1", wait_time_seconds=30)).body
    assert output(parent) == {"from": "child"}
    with pytest.raises(TeaException) as info:  # the task is no longer waiting
        sdk.start_execution(models.StartExecutionRequest(flow_name="by_token", execution_name="c2", callback_fn_ftask_token=token))
    assert (info.value.code, info.value.statusCode) == ("InvalidArgument", 400)


# ---------------------------------------------------------------------------------- child flows

CHILD_OK = """Type: StateMachine
SpecVersion: v1
StartAt: Work
States:
  - Type: Pass
    Name: Work
    OutputConstructor:
      child: done
      got.$: $Input.v
    End: true
"""
CHILD_FAILS = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: AuditErrorNeedsRetry\n    Detail: audit failed\n"
CHILD_WAITS = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 120\n    End: true\n"


@pytest.fixture(scope="module")
def children(sdk: Any) -> None:
    for name, definition in (("child_ok", CHILD_OK), ("child_fails", CHILD_FAILS), ("child_waits", CHILD_WAITS)):
        sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))


def test_old_sync_child_flow_returns_the_childs_output(sdk: Any, children: None) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: run_child
    resourceArn: acs:fnf:::flow/child_ok
    pattern: sync
    inputMappings: [{target: v, source: $input.v}]
    serviceParams:
      Input: $
"""
    out = output(run(sdk, "parent_sync", flow, {"v": 42}))
    assert out == {"child": "done", "got": 42}


def test_old_request_response_child_flow_returns_the_start_answer(sdk: Any, children: None) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: fire_and_forget
    resourceArn: acs:fnf:::flow/child_ok
    pattern: requestResponse
    serviceParams:
      Input: $
      ExecutionName: $.child_name
    inputMappings: [{target: child_name, source: kid_1}, {target: v, source: 1}]
"""
    out = output(run(sdk, "parent_rr", flow))
    assert out["FlowName"] == "child_ok" and out["ExecutionName"] == "kid_1" and out["RequestID"]
    kid = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="child_ok", execution_name="kid_1", wait_time_seconds=30)).body
    assert output(kid) == {"child": "done", "got": 1}


def test_a_parent_catches_its_childs_fail_error(sdk: Any, children: None) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: run_child
    resourceArn: acs:fnf:::flow/child_fails
    pattern: sync
    catch:
      - errors: [AuditErrorNeedsRetry]
        goto: handled
  - type: pass
    name: handled
    outputMappings: [{target: handled, source: true}]
"""
    assert output(run(sdk, "parent_catches", flow)).get("handled") is True


def test_new_syntax_child_wait_for_system_callback(sdk: Any, children: None) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Child
States:
  - Type: Task
    Name: Child
    Action: FNF:StartExecution
    TaskMode: WaitForSystemCallback
    Parameters:
      resourceArn: acs:fnf:::flow/child_ok
      input:
        v.$: $Input.v
    End: true
"""
    body = run(sdk, "parent_new", flow, {"v": "x"})
    assert body.status == "Succeeded", failure(sdk, "parent_new")
    out = output(body)
    assert json.dumps({"child": "done", "got": "x"})[1:-1] in json.dumps(out)


def test_stopping_a_child_reports_its_error_to_the_parent(sdk: Any, children: None) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: run_child
    resourceArn: acs:fnf:::flow/child_waits
    pattern: sync
    serviceParams:
      ExecutionName: $.kid
    inputMappings: [{target: kid, source: stop_me}]
    catch:
      - errors: [AnyCustomError]
        goto: post_action
  - type: pass
    name: post_action
    outputMappings: [{target: cleaned_up, source: true}]
"""
    sdk.create_flow(models.CreateFlowRequest(name="parent_stop", definition=flow, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="parent_stop", execution_name="e1"))
    deadline_body = None
    for _ in range(100):  # the child exists once the parent's activity started it
        try:
            deadline_body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="child_waits", execution_name="stop_me")).body
            break
        except TeaException:
            sdk.describe_execution(models.DescribeExecutionRequest(flow_name="parent_stop", execution_name="e1", wait_time_seconds=1))
    assert deadline_body is not None and deadline_body.status == "Running"
    sdk.stop_execution(models.StopExecutionRequest(flow_name="child_waits", execution_name="stop_me", error="AnyCustomError", cause="stopped by the test"))
    child = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="child_waits", execution_name="stop_me", wait_time_seconds=30)).body
    assert child.status == "Stopped"
    parent = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="parent_stop", execution_name="e1", wait_time_seconds=30)).body
    assert output(parent).get("cleaned_up") is True


# ---------------------------------------------------------------------------------- time and stop

def test_wait_then_continue(sdk: Any) -> None:
    flow = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 1\n    Next: P\n  - Type: Pass\n    Name: P\n    End: true\n"
    body = run(sdk, "wait_1s", flow, {"k": 1})
    assert output(body) == {"k": 1}
    assert body.stopped_time > body.started_time


def test_stop_execution_ends_a_waiting_execution(sdk: Any) -> None:
    flow = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 200\n    End: true\n"
    sdk.create_flow(models.CreateFlowRequest(name="stoppable", definition=flow, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="stoppable", execution_name="e1"))
    sdk.describe_execution(models.DescribeExecutionRequest(flow_name="stoppable", execution_name="e1", wait_time_seconds=1))
    sdk.stop_execution(models.StopExecutionRequest(flow_name="stoppable", execution_name="e1", error="Halted", cause="by test"))
    body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="stoppable", execution_name="e1", wait_time_seconds=30)).body
    assert body.status == "Stopped"
    assert history_types(sdk, "stoppable")[-1] == "ExecutionStopped"
    with pytest.raises(TeaException) as info:
        sdk.stop_execution(models.StopExecutionRequest(flow_name="stoppable", execution_name="e1"))
    assert (info.value.code, info.value.statusCode) == ("ExecutionAlreadyCompleted", 400)


def test_old_flow_timeout_ends_timed_out(sdk: Any) -> None:
    flow = "version: v1\ntype: flow\ntimeoutSeconds: 1\nsteps:\n  - type: wait\n    name: long\n    duration: 30\n"
    body = run(sdk, "flow_timeout", flow)
    assert body.status == "TimedOut"
    assert history_types(sdk, "flow_timeout")[-1] == "ExecutionTimedOut"


def test_timed_out_name_is_execution_already_exists(sdk: Any) -> None:
    """Issue 3 rule 4 for TimedOut (see tests/e2e/test_start_execution.py for the other ends)."""
    flow = "version: v1\ntype: flow\ntimeoutSeconds: 1\nsteps:\n  - type: wait\n    name: long\n    duration: 30\n"
    assert run(sdk, "timed_out_again", flow).status == "TimedOut"
    with pytest.raises(TeaException) as info:
        sdk.start_execution(models.StartExecutionRequest(flow_name="timed_out_again", execution_name="e1"))
    assert (info.value.code, info.value.statusCode) == ("ExecutionAlreadyExists", 400)


# ---------------------------------------------------------------------------------- concurrency

def test_parallel_function_branches(sdk: Any) -> None:
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
              body: {a: 1, b: 2}
            End: true
      - StartAt: B
        States:
          - Type: Task
            Name: B
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
              body: {a: 10, b: 20}
            End: true
    End: true
"""
    out = output(run(sdk, "parallel_fn", flow))
    assert out["Branch0"]["Body"] == {"sum": 3} and out["Branch1"]["Body"] == {"sum": 30}


@pytest.mark.parametrize("limit", [1, 2])
def test_map_max_concurrency_is_never_exceeded(sdk: Any, engine: Service, limit: int) -> None:
    r = redis.Redis.from_url(engine.redis_url)
    r.delete("test:inflight", "test:peak")
    flow = f"""Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    MaxConcurrency: {limit}
    Processor:
      StartAt: Call
      States:
        - Type: Task
          Name: Call
          Action: FC:InvokeFunction
          Parameters:
            resourceArn: acs:fc:cn-hangzhou:123:functions/inflight/LATEST
            body:
              item.$: $Input
          End: true
    End: true
"""
    out = output(run(sdk, f"map_{limit}", flow, {"items": [1, 2, 3, 4, 5]}))
    assert [i["Body"]["item"] for i in out["Items"]] == [1, 2, 3, 4, 5]
    assert 1 <= int(r.get("test:peak") or 0) <= limit


def test_a_callback_task_times_out_while_waiting(sdk: Any) -> None:
    flow = """version: v1
type: flow
steps:
  - type: task
    name: never_reported
    resourceArn: acs:fc:::services/demo/functions/keep_token
    pattern: waitForCallback
    timeoutSeconds: 1
    inputMappings:
      - {target: token, source: $context.task.token}
    catch:
      - errors: [FnF.TaskTimeout]
        goto: gave_up
  - type: pass
    name: gave_up
    outputMappings: [{target: gave_up, source: true}]
"""
    assert output(run(sdk, "callback_timeout", flow)).get("gave_up") is True


def test_timers_fire_within_a_second_of_due(sdk: Any) -> None:
    flow = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 2\n    End: true\n"
    output(run(sdk, "wait_precision", flow))
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="wait_precision", execution_name="e1")).body.events
    entered = next(e.time for e in events if e.type == "StepEntered")
    left = next(e.time for e in events if e.type == "StepSucceeded")
    from common.timefmt import parse_rfc3339

    waited = parse_rfc3339(left) - parse_rfc3339(entered)  # the engine's own timestamps, not the test's clock
    assert 2000 <= waited < 3000, waited


def test_new_syntax_child_request_complete(sdk: Any, children: None) -> None:
    flow = """Type: StateMachine
SpecVersion: v1
StartAt: Fire
States:
  - Type: Task
    Name: Fire
    Action: FNF:StartExecution
    TaskMode: RequestComplete
    Parameters:
      resourceArn: acs:fnf:::flow/child_ok
      executionName: rc_kid
      input:
        v: 5
    End: true
"""
    out = output(run(sdk, "parent_rc", flow))
    assert "rc_kid" in json.dumps(out) and "child_ok" in json.dumps(out)
    kid = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="child_ok", execution_name="rc_kid", wait_time_seconds=30)).body
    assert output(kid) == {"child": "done", "got": 5}
