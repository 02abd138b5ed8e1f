"""Runaway flows are bounded and a stop reaches the children (issue 14), through the official SDK on
real processes: the nesting depth limit in every start mode, child starts under the account's
running cap, the stop cascade, and the interpreter-crash path ending an execution like any failure."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys, runcount
from common.settings import Settings
from common.tokens import make_token
from tests.conftest import ROOT, Service, running_service

pytestmark = pytest.mark.e2e

ACCOUNT = "1234567890"  # the account of the fixtures' single key (OPENFNF_ACCOUNT_ID's default)
DEPTH = 4  # the module service's OPENFNF_MAX_NESTING_DEPTH: a root and at most 4 levels of children
TERMINAL = {"Succeeded", "Failed", "Stopped", "TimedOut"}
FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"
CRASH_HOOK = ROOT / "tests" / "fixtures" / "crash_hook"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("runaway"), workers=2, OPENFNF_MAX_NESTING_DEPTH=str(DEPTH)) as service:
        yield service


@pytest.fixture(scope="module")
def sdk(svc: Service) -> Any:
    return svc.client()


def create(sdk: Any, name: str, definition: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))


def describe(sdk: Any, flow: str, name: str, wait: int = 0) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=wait)).body


def executions(sdk: Any, flow: str) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        body = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, limit=100, next_token=token)).body
        out += body.executions or []
        token = body.next_token
        if not token:
            return out


def last_event(sdk: Any, flow: str, name: str) -> tuple[str, dict[str, Any]]:
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events
    return events[-1].type, json.loads(events[-1].event_detail)


def until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Wait for a condition, polling (the deadline only bounds a test that would otherwise hang)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def self_starting(flow: str, mode: str, catch: str = "") -> str:
    """A new-syntax flow whose task starts the flow itself as a child."""
    return f"""Type: StateMachine
SpecVersion: v1
StartAt: Again
States:
  - Type: Task
    Name: Again
    Action: FNF:StartExecution
    TaskMode: {mode}
    Parameters:
      resourceArn: acs:fnf:::flow/{flow}
{catch}    End: true
"""


# ------------------------------------------------------------------------------------- nesting depth

def test_a_sync_self_start_stops_at_the_nesting_limit(sdk: Any) -> None:
    create(sdk, "recur_sync", self_starting("recur_sync", "WaitForSystemCallback"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="recur_sync", execution_name="root"))
    root = describe(sdk, "recur_sync", "root", wait=60)
    assert root.status == "Failed"
    kind, detail = last_event(sdk, "recur_sync", "root")
    assert (kind, detail["error"]) == ("ExecutionFailed", "FnF.MaxNestingDepthExceeded"), detail
    found = executions(sdk, "recur_sync")
    assert len(found) == DEPTH + 1  # the root and DEPTH levels of children; the next start was refused
    assert {e.status for e in found} == {"Failed"}


def test_a_fire_and_forget_self_start_stops_at_the_nesting_limit(sdk: Any) -> None:
    """The depth travels with RequestComplete children too, although each parent ends at once."""
    create(sdk, "recur_ff", self_starting("recur_ff", "RequestComplete"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="recur_ff", execution_name="root"))

    def settled() -> bool:
        found = executions(sdk, "recur_ff")
        return any(e.status == "Failed" for e in found) and all(e.status in TERMINAL for e in found)

    until("the chain to end", settled)
    found = executions(sdk, "recur_ff")
    assert len(found) == DEPTH + 1
    failed = [e for e in found if e.status == "Failed"]
    assert len(failed) == 1 and len([e for e in found if e.status == "Succeeded"]) == DEPTH
    assert last_event(sdk, "recur_ff", failed[0].name)[1]["error"] == "FnF.MaxNestingDepthExceeded"


# ------------------------------------------------------------------------------------- running cap

def test_child_starts_count_against_the_running_cap_and_the_refusal_can_be_caught(tmp_path: Path) -> None:
    catch = """    Catch:
      - Errors: [ResourceThrottled]
        OutputConstructor:
          capped.$: $Context.Current.Error.Code
        Next: Done
"""
    flow = self_starting("recur_capped", "WaitForSystemCallback", catch).replace("    End: true\n", "    Next: Done\n")
    flow += "  - Type: Pass\n    Name: Done\n    End: true\n"
    with running_service(tmp_path, workers=2, OPENFNF_MAX_RUNNING_EXECUTIONS="3") as service:
        sdk = service.client()
        create(sdk, "recur_capped", flow)
        sdk.start_execution(models.StartExecutionRequest(flow_name="recur_capped", execution_name="root"))
        root = describe(sdk, "recur_capped", "root", wait=60)
        assert root.status == "Succeeded", last_event(sdk, "recur_capped", "root")
        assert '"capped": "ResourceThrottled"' in json.dumps(json.loads(root.output))
        found = executions(sdk, "recur_capped")
        assert len(found) == 3  # the root and two children ran; the third child start was refused
        assert {e.status for e in found} == {"Succeeded"}
        # Every place taken was given back as the executions ended.
        assert runcount.read_total_sync(redis.Redis.from_url(service.redis_url), ACCOUNT, Settings().running_shards) == 0


# ------------------------------------------------------------------------------------- stop cascade

OLD_SYNC_CHILD = """version: v1
type: flow
steps:
  - type: task
    name: run_child
    resourceArn: acs:fnf:::flow/{child}
    pattern: {pattern}
    serviceParams:
      ExecutionName: $.kid
    inputMappings: [{{target: kid, source: {kid}}}]
"""
HOLD = "Type: StateMachine\nSpecVersion: v1\nStartAt: Hold\nStates:\n  - Type: Wait\n    Name: Hold\n    Seconds: 3600\n    End: true\n"


def test_stopping_a_parent_stops_its_waited_children_down_a_three_level_chain(sdk: Any) -> None:
    """top -sync-> middle -sync-> bottom; middle also starts `loner` fire-and-forget, which runs on."""
    create(sdk, "cascade_bottom", HOLD)
    create(sdk, "cascade_loner", HOLD)
    middle = """Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: Loner
        States:
          - Type: Task
            Name: Loner
            Action: FNF:StartExecution
            TaskMode: RequestComplete
            Parameters:
              resourceArn: acs:fnf:::flow/cascade_loner
              executionName: loner1
            End: true
      - StartAt: Bottom
        States:
          - Type: Task
            Name: Bottom
            Action: FNF:StartExecution
            TaskMode: WaitForSystemCallback
            Parameters:
              resourceArn: acs:fnf:::flow/cascade_bottom
              executionName: bottom1
            End: true
"""
    create(sdk, "cascade_middle", middle)
    create(sdk, "cascade_top", OLD_SYNC_CHILD.format(child="cascade_middle", pattern="sync", kid="middle1"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="cascade_top", execution_name="top1"))
    for flow, name in (("cascade_bottom", "bottom1"), ("cascade_loner", "loner1")):
        until(f"{name} to run", lambda flow=flow, name=name: running(sdk, flow, name))
    sdk.stop_execution(models.StopExecutionRequest(flow_name="cascade_top", execution_name="top1", error="Halt", cause="by the test"))
    for flow, name in (("cascade_top", "top1"), ("cascade_middle", "middle1"), ("cascade_bottom", "bottom1")):
        assert describe(sdk, flow, name, wait=30).status == "Stopped", name
    assert last_event(sdk, "cascade_top", "top1")[1] == {"error": "Halt", "cause": "by the test"}
    for flow, name, parent in (("cascade_middle", "middle1", "top1"), ("cascade_bottom", "bottom1", "middle1")):
        kind, detail = last_event(sdk, flow, name)
        assert kind == "ExecutionStopped" and detail["error"] == "FnF.ParentStopped", detail
        assert parent in detail["cause"]
    # bottom1 was stopped by middle1's end, which would have stopped loner1 too had it been adopted.
    assert describe(sdk, "cascade_loner", "loner1").status == "Running"
    sdk.stop_execution(models.StopExecutionRequest(flow_name="cascade_loner", execution_name="loner1"))


def running(sdk: Any, flow: str, name: str) -> bool:
    try:
        return bool(describe(sdk, flow, name).status == "Running")
    except TeaException as err:
        if err.code != "ExecutionNotExists":
            raise
        return False


def test_stopping_the_root_of_a_self_recursive_flow_ends_every_descendant(sdk: Any) -> None:
    catch = """    Catch:
      - Errors: [FnF.MaxNestingDepthExceeded]
        Next: Hold
"""
    flow = self_starting("recur_hold", "WaitForSystemCallback", catch)
    flow += "  - Type: Wait\n    Name: Hold\n    Seconds: 3600\n    End: true\n"
    create(sdk, "recur_hold", flow)
    sdk.start_execution(models.StartExecutionRequest(flow_name="recur_hold", execution_name="root"))
    # Each level waits for its child; the deepest one catches the refused start and holds.
    until("the chain to reach the limit", lambda: len(executions(sdk, "recur_hold")) == DEPTH + 1)
    assert {e.status for e in executions(sdk, "recur_hold")} == {"Running"}
    sdk.stop_execution(models.StopExecutionRequest(flow_name="recur_hold", execution_name="root"))
    until("every descendant to stop", lambda: {e.status for e in executions(sdk, "recur_hold")} == {"Stopped"})
    assert len(executions(sdk, "recur_hold")) == DEPTH + 1


def test_a_child_started_with_a_parents_token_is_stopped_with_the_parent(sdk: Any, svc: Service) -> None:
    """A callback child the parent owns (StartExecution with CallbackFnFTaskToken) is stopped too."""
    waiting = """Type: StateMachine
SpecVersion: v1
StartAt: Wait
States:
  - Type: Task
    Name: Wait
    Action: FNF:StartExecution
    TaskMode: WaitForCustomCallback
    Parameters:
      resourceArn: acs:fnf:::flow/cascade_nobody
      executionName: never
    End: true
"""
    create(sdk, "cascade_nobody", HOLD)
    create(sdk, "cascade_owner", waiting)
    create(sdk, "cascade_owned", HOLD)
    sdk.start_execution(models.StartExecutionRequest(flow_name="cascade_owner", execution_name="o1"))
    until("the owner's task to wait", lambda: running(sdk, "cascade_nobody", "never"))
    flow_id = sdk.describe_flow(models.DescribeFlowRequest(name="cascade_owner")).body.id
    r = redis.Redis.from_url(svc.redis_url)
    waiting_tasks = [k.decode() for k, v in r.hgetall(keys.tasks(keys.execution_tag(flow_id, "o1"))).items() if v == b"waiting"]
    assert len(waiting_tasks) == 1
    token = make_token("openfnf-dev-token-secret", flow_id, "o1", waiting_tasks[0])
    sdk.start_execution(models.StartExecutionRequest(flow_name="cascade_owned", execution_name="owned1", callback_fn_ftask_token=token))
    owned_id = sdk.describe_flow(models.DescribeFlowRequest(name="cascade_owned")).body.id
    assert r.hget(keys.execution(keys.execution_tag(owned_id, "owned1")), "depth") == b"1"  # the depth travels
    sdk.stop_execution(models.StopExecutionRequest(flow_name="cascade_owner", execution_name="o1"))
    assert describe(sdk, "cascade_owned", "owned1", wait=30).status == "Stopped"
    assert last_event(sdk, "cascade_owned", "owned1")[1]["error"] == "FnF.ParentStopped"
    sdk.stop_execution(models.StopExecutionRequest(flow_name="cascade_nobody", execution_name="never"))


def test_a_parent_that_fails_stops_the_child_its_cancelled_task_waited_for(sdk: Any, svc: Service) -> None:
    """A sibling branch fails: the Parallel cancels the task waiting for a sync child, which is stopped."""
    failing = """Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: Kid
        States:
          - Type: Task
            Name: Kid
            Action: FNF:StartExecution
            TaskMode: WaitForSystemCallback
            Parameters:
              resourceArn: acs:fnf:::flow/cascade_victim
              executionName: victim1
            End: true
      - StartAt: Gate
        States:
          - Type: Task
            Name: Gate
            Action: FNF:StartExecution
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fnf:::flow/cascade_victim
              executionName: gate1
            End: true
"""
    create(sdk, "cascade_victim", HOLD)
    create(sdk, "cascade_failing", failing)
    sdk.start_execution(models.StartExecutionRequest(flow_name="cascade_failing", execution_name="p1"))
    for name in ("victim1", "gate1"):
        until(f"{name} to run", lambda name=name: running(sdk, "cascade_victim", name))
    flow_id = sdk.describe_flow(models.DescribeFlowRequest(name="cascade_failing")).body.id
    tag = keys.execution_tag(flow_id, "p1")
    r = redis.Redis.from_url(svc.redis_url)
    until("the child to be adopted", lambda: bool(r.hlen(keys.children(tag))))
    kid_task = set(r.hvals(keys.children(tag)))
    gate = [k.decode() for k, v in r.hgetall(keys.tasks(tag)).items() if v == b"waiting" and k not in kid_task]
    assert len(gate) == 1
    token = make_token("openfnf-dev-token-secret", flow_id, "p1", gate[0])
    sdk.report_task_failed(models.ReportTaskFailedRequest(task_token=token, error="Rejected", cause="by the test"))
    assert describe(sdk, "cascade_failing", "p1", wait=30).status == "Failed"
    assert describe(sdk, "cascade_victim", "victim1", wait=30).status == "Stopped"
    kind, detail = last_event(sdk, "cascade_victim", "victim1")
    assert kind == "ExecutionStopped" and detail["error"] == "FnF.TaskCancelled" and "ended Failed" in detail["cause"], detail
    assert describe(sdk, "cascade_victim", "gate1").status == "Running"  # a custom-callback task's child is not adopted
    sdk.stop_execution(models.StopExecutionRequest(flow_name="cascade_victim", execution_name="gate1"))


# ------------------------------------------------------------------------------------- interpreter crash

def test_an_interpreter_crash_ends_the_execution_like_any_failure(tmp_path: Path) -> None:
    """A worker whose advance() raises on a report saying "boom" (tests/fixtures/crash_hook): the
    execution fails with FnF.InternalError in the current state shape, its timer and its other task
    is cancelled, and its parent hears of it."""
    fragile = """Type: StateMachine
SpecVersion: v1
StartAt: All
States:
  - Type: Parallel
    Name: All
    End: true
    Branches:
      - StartAt: Sleep
        States:
          - Type: Wait
            Name: Sleep
            Seconds: 3600
            End: true
      - StartAt: Ask
        States:
          - Type: Task
            Name: Ask
            Action: FC:InvokeFunction
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fc:::functions/keep_token/LATEST
              body:
                token.$: $Context.Current.TaskToken
            End: true
      - StartAt: Ask2
        States:
          - Type: Task
            Name: Ask2
            Action: FC:InvokeFunction
            TaskMode: WaitForCustomCallback
            Parameters:
              resourceArn: acs:fc:::functions/keep_token/LATEST
              body:
                token.$: $Context.Current.TaskToken
            End: true
"""
    parent = OLD_SYNC_CHILD.format(child="fragile", pattern="sync", kid="f1")
    with running_service(tmp_path, workers=0, OPENFNF_FUNCTIONS=str(FUNCTIONS)) as service:
        hooked = {"PYTHONPATH": os.pathsep.join([str(CRASH_HOOK), str(ROOT)])}
        for i in range(2):
            service.start(f"worker{i}", "worker", "--hostname", f"w{i}@%h", env=hooked)
        sdk = service.client()
        r = redis.Redis.from_url(service.redis_url)
        create(sdk, "fragile", fragile)
        create(sdk, "fragile_parent", parent)
        sdk.start_execution(models.StartExecutionRequest(flow_name="fragile_parent", execution_name="p1"))
        until("both task tokens", lambda: r.llen("test:tokens") == 2)
        tag = keys.execution_tag(sdk.describe_flow(models.DescribeFlowRequest(name="fragile")).body.id, "f1")

        def mine(member: bytes) -> bool:
            return tag in member.decode()

        assert any(mine(m) for p in range(16) for m in r.zrange(keys.timers(p, 16), 0, -1))
        assert sorted(r.hvals(keys.tasks(tag))) == [b"waiting", b"waiting"]
        token = r.lpop("test:tokens").decode()
        sdk.report_task_succeeded(models.ReportTaskSucceededRequest(task_token=token, output='{"boom": true}'))
        child = describe(sdk, "fragile", "f1", wait=30)
        assert child.status == "Failed"
        kind, detail = last_event(sdk, "fragile", "f1")
        assert (kind, detail["error"]) == ("ExecutionFailed", "FnF.InternalError") and "injected fault" in detail["cause"]
        state = json.loads(r.hget(keys.execution(tag), "state"))
        assert state["v"] == 2 and state["status"] == "Failed" and state["waits"] == {}
        assert not any(mine(m) for p in range(16) for m in r.zrange(keys.timers(p, 16), 0, -1))  # the Wait's timer is cancelled
        assert sorted(r.hvals(keys.tasks(tag))) == [b"done", b"done"]  # the other task no longer waits
        top = describe(sdk, "fragile_parent", "p1", wait=30)
        assert top.status == "Failed"
        assert last_event(sdk, "fragile_parent", "p1")[1]["error"] == "FnF.InternalError"
