"""RedriveExecution (issue 18) through the official SDK's generic call, against real processes."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common.settings import Settings
from openfnf.extensions import redrive_execution
from tests.conftest import ROOT, Service, running_service
from tests.redrive_handlers import calls

pytestmark = pytest.mark.e2e

FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "redrive.yaml"
ARN = "acs:fc:cn-hangzhou:123:functions/counted/LATEST"
MAX_REDRIVES = 3


def task(name: str, key: str, fail_until: int = 0, hold: bool = False, end: str = "End: true", indent: int = 0) -> str:
    """A new-syntax Task calling `counted` with its counter `key` (dir from the execution input)."""
    pad = " " * indent
    return f"""{pad}- Type: Task
{pad}  Name: {name}
{pad}  Action: FC:InvokeFunction
{pad}  Parameters:
{pad}    resourceArn: {ARN}
{pad}    body:
{pad}      dir.$: $Input.dir
{pad}      key: {key}
{pad}      fail_until: {fail_until}
{pad}      hold: {str(hold).lower()}
{pad}  {end}
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One drive worker, and an activity worker with threads: a held call (see tests/redrive_handlers.py)
    blocks one thread, and each activity is its own message (OPENFNF_ACTIVITY_BATCH=1), so it holds
    back no other call's result."""
    env = {"OPENFNF_FUNCTIONS": str(FUNCTIONS), "OPENFNF_MAX_REDRIVES": str(MAX_REDRIVES), "OPENFNF_ACTIVITY_BATCH": "1"}
    with running_service(tmp_path_factory.mktemp("redrive"), workers=0, **env) as svc:
        defaults = Settings.model_fields
        svc.start("drives", "worker", "--queues", str(defaults["drive_queue"].default), "--hostname", "d@%h")
        svc.start(
            "activities", "worker", "--queues", str(defaults["activity_queue"].default),
            "--pool", "threads", "--concurrency", "8", "--hostname", "a@%h",
        )  # fmt: skip
        yield svc


@pytest.fixture(scope="module")
def sdk(engine: Service) -> Any:
    return engine.client()


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """The directory the functions count their calls in (and find `go` in)."""
    return tmp_path


def create(sdk: Any, flow: str, definition: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=flow, definition=definition, description="", type="FDL"))


def start(sdk: Any, flow: str, name: str, data: dict[str, Any]) -> None:
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=json.dumps(data)))


def ended(sdk: Any, flow: str, name: str, timeout: float = 60) -> Any:
    """Long-poll until the execution is no longer Running."""
    deadline = time.monotonic() + timeout
    while True:
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=10)).body
        if body.status != "Running" or time.monotonic() > deadline:
            return body


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    return list(events)


def wait_until(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def refused(sdk: Any, flow: str, name: str) -> TeaException:
    with pytest.raises(TeaException) as err:
        redrive_execution(sdk, flow, name)
    return err.value


PARALLEL = f"""Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: A
        States:
{task("A", "a", indent=10)}      - StartAt: B
        States:
{task("B", "b", fail_until=1, hold=True, indent=10)}"""


def test_parallel_redrive_runs_only_the_failed_branch(sdk: Any, box: Path) -> None:
    create(sdk, "par", PARALLEL)
    start(sdk, "par", "e1", {"dir": str(box)})
    # B fails only once A's result is in the history: A then has nothing left to be cancelled
    wait_until("A succeeded", lambda: any(e.type == "TaskSucceeded" for e in history(sdk, "par", "e1")))
    (box / "go").touch()
    first = ended(sdk, "par", "e1")
    assert first.status == "Failed"

    answer = redrive_execution(sdk, "par", "e1")
    assert answer["Status"] == "Running" and answer["RedriveCount"] == 1 and answer["Name"] == "e1"
    described = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="par", execution_name="e1")).body
    assert described.status in ("Running", "Succeeded")
    done = ended(sdk, "par", "e1")
    assert done.status == "Succeeded", done.to_map()
    assert calls(box, "a") == 1 and calls(box, "b") == 2  # A's result was reused, B ran again
    out = json.loads(done.output)
    assert "a" in json.dumps(out) and '"calls": 2' in json.dumps(out)
    types = [e.type for e in history(sdk, "par", "e1")]
    assert types.count("ExecutionRedriven") == 1 and types.index("ExecutionFailed") < types.index("ExecutionRedriven")
    assert types[-1] == "ExecutionSucceeded" and types.count("ExecutionStarted") == 1
    redriven = next(e for e in history(sdk, "par", "e1") if e.type == "ExecutionRedriven")
    assert json.loads(redriven.event_detail) == {"redriveCount": 1}
    assert refused(sdk, "par", "e1").code == "ExecutionNotRedrivable"  # it has succeeded now


MAP = f"""Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    End: true
    Processor:
      StartAt: Work
      States:
        - Type: Task
          Name: Work
          Action: FC:InvokeFunction
          Parameters:
            resourceArn: {ARN}
            body:
              dir.$: $Input.dir
              key.$: $Input.key
              fail_until.$: $Input.fail_until
              hold.$: $Input.hold
          End: true
"""


def test_map_redrive_runs_only_the_failed_iterations(sdk: Any, box: Path) -> None:
    failing = {4, 26, 49}
    items = [{"dir": str(box), "key": f"i{n}", "fail_until": int(n in failing), "hold": n in failing} for n in range(50)]
    create(sdk, "map50", MAP)
    start(sdk, "map50", "e1", {"items": items})
    wait_until("47 iterations succeeded", lambda: sum(e.type == "TaskSucceeded" for e in history(sdk, "map50", "e1")) == 47)
    (box / "go").touch()
    assert ended(sdk, "map50", "e1").status == "Failed"
    redrive_execution(sdk, "map50", "e1")
    done = ended(sdk, "map50", "e1")
    assert done.status == "Succeeded", done.to_map()
    assert {n: calls(box, f"i{n}") for n in range(50) if calls(box, f"i{n}") != 1} == dict.fromkeys(failing, 2)
    out = json.loads(done.output)["Items"]
    assert [o["Body"]["key"] for o in out] == [f"i{n}" for n in range(50)]


KEEP_DIR_THEN_SLOW = "OutputConstructor: {dir.$: $Input.dir}\n    Next: Slow"  # Slow reads the counters' dir too
LONG = f"""Type: StateMachine
SpecVersion: v1
Timeout: 2
StartAt: First
States:
{task("First", "first", end=KEEP_DIR_THEN_SLOW, indent=2)}{task("Slow", "slow", hold=True, indent=2)}"""


def test_redrive_after_a_stop(sdk: Any, box: Path) -> None:
    create(sdk, "stoppable", LONG.replace("Timeout: 2\n", ""))
    start(sdk, "stoppable", "e1", {"dir": str(box)})
    wait_until("Slow called", lambda: calls(box, "slow") == 1)
    assert refused(sdk, "stoppable", "e1").code == "ExecutionNotRedrivable"  # Running
    sdk.stop_execution(models.StopExecutionRequest(flow_name="stoppable", execution_name="e1", error="Halt", cause="by the test"))
    assert ended(sdk, "stoppable", "e1").status == "Stopped"
    (box / "go").touch()
    redrive_execution(sdk, "stoppable", "e1")
    done = ended(sdk, "stoppable", "e1")
    assert done.status == "Succeeded", done.to_map()
    assert done.stopped_time and calls(box, "first") == 1 and calls(box, "slow") == 2


def test_redrive_after_a_flow_timeout(sdk: Any, box: Path) -> None:
    create(sdk, "timed", LONG)
    start(sdk, "timed", "e1", {"dir": str(box)})
    first = ended(sdk, "timed", "e1")
    assert first.status == "TimedOut"
    (box / "go").touch()  # the held call now returns: its late result is dropped
    redrive_execution(sdk, "timed", "e1")
    done = ended(sdk, "timed", "e1")
    assert done.status == "Succeeded", done.to_map()
    assert calls(box, "first") == 1 and calls(box, "slow") == 2


def test_refusals_and_the_most_redrives(engine: Service, sdk: Any, box: Path) -> None:
    always = f"""Type: StateMachine
SpecVersion: v1
StartAt: Bad
States:
{task("Bad", "bad", fail_until=1000, indent=2)}"""
    create(sdk, "always", always)
    start(sdk, "always", "e1", {"dir": str(box)})
    assert ended(sdk, "always", "e1").status == "Failed"
    assert refused(sdk, "always", "nope").code == "ExecutionNotExists"
    start(sdk, "always", "expired", {"dir": str(box)})
    assert ended(sdk, "always", "expired").status == "Failed"
    import redis as redis_py

    from common import keys

    flow_id = redis_py.Redis.from_url(engine.redis_url).hget(keys.flow(Settings.model_fields["account_id"].default, "always"), "Id")
    assert flow_id is not None
    tag = keys.execution_tag(flow_id.decode(), "expired")
    redis_py.Redis.from_url(engine.redis_url).delete(*keys.execution_keys(tag))  # what its retention TTL does
    err = refused(sdk, "always", "expired")
    assert err.code == "ExecutionNotRedrivable" and "retention" in err.message and err.statusCode == 400
    assert refused(sdk, "no_such_flow", "e1").code == "FlowNotExists"
    for n in range(1, MAX_REDRIVES + 1):
        assert redrive_execution(sdk, "always", "e1")["RedriveCount"] == n
        assert ended(sdk, "always", "e1").status == "Failed"
    err = refused(sdk, "always", "e1")
    assert err.code == "ExecutionNotRedrivable" and "most allowed" in err.message and err.statusCode == 400
    assert calls(box, "bad") == MAX_REDRIVES + 2  # e1 first and after each redrive, and `expired` once
    sdk.create_flow(models.CreateFlowRequest(name="express_bad", definition=always, description="", type="FDL", execution_mode="Express"))
    sync = sdk.start_sync_execution(models.StartSyncExecutionRequest(flow_name="express_bad", execution_name="x", input=json.dumps({"dir": str(box)})))
    assert sync.body.status == "Failed"
    err = refused(sdk, "express_bad", sync.body.name)
    assert err.code == "ExecutionNotRedrivable" and "Express" in err.message


def test_redrives_at_once_make_one(sdk: Any, box: Path) -> None:
    flow = f"""Type: StateMachine
SpecVersion: v1
StartAt: Once
States:
{task("Once", "once", fail_until=1, hold=True, indent=2)}"""
    create(sdk, "racy", flow)
    (box / "go").touch()
    start(sdk, "racy", "e1", {"dir": str(box)})
    assert ended(sdk, "racy", "e1").status == "Failed"
    (box / "go").unlink()  # the redriven call holds: the execution stays Running while both redrives arrive
    results: list[Any] = []
    callers = 8
    barrier = threading.Barrier(callers)

    def redrive() -> None:
        barrier.wait()
        try:
            results.append(redrive_execution(sdk, "racy", "e1")["RedriveCount"])
        except TeaException as err:
            results.append(err.code)

    threads = [threading.Thread(target=redrive) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [1] + ["ExecutionNotRedrivable"] * (callers - 1)
    (box / "go").touch()
    assert ended(sdk, "racy", "e1").status == "Succeeded"
    assert [e.type for e in history(sdk, "racy", "e1")].count("ExecutionRedriven") == 1
    assert calls(box, "once") == 2


def test_terminal_client_redrives(engine: Service, sdk: Any, box: Path) -> None:
    from click.testing import CliRunner

    from openfnf.cli import main

    env = {"OPENFNF_ENDPOINT": f"http://{engine.endpoint}", "OPENFNF_ACCESS_KEY_ID": engine.key_id,
           "OPENFNF_ACCESS_KEY_SECRET": engine.secret, "NO_COLOR": "1"}  # fmt: skip
    flow = f"""Type: StateMachine
SpecVersion: v1
StartAt: Flaky
States:
{task("Flaky", "flaky", fail_until=1, indent=2)}"""
    create(sdk, "cli_flaky", flow)
    start(sdk, "cli_flaky", "e1", {"dir": str(box)})
    assert ended(sdk, "cli_flaky", "e1").status == "Failed"
    result = CliRunner().invoke(main, ["executions", "redrive", "e1", "--flow", "cli_flaky", "--wait"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "redriven cli_flaky/e1 (redrive 1" in result.stdout
    assert ended(sdk, "cli_flaky", "e1").status == "Succeeded"
    again = CliRunner().invoke(main, ["executions", "redrive", "e1", "--flow", "cli_flaky", "--json"], env=env)
    assert again.exit_code != 0 and "ExecutionNotRedrivable" in again.stderr


FLAKY = f"""Type: StateMachine
SpecVersion: v1
StartAt: Flaky
States:
{task("Flaky", "flaky", fail_until=1, indent=2)}"""


def test_a_worker_killed_while_it_drives_the_redrive_loses_nothing(engine: Service, sdk: Any, box: Path) -> None:
    create(sdk, "crashy", FLAKY)
    start(sdk, "crashy", "e1", {"dir": str(box)})
    assert ended(sdk, "crashy", "e1").status == "Failed"
    drive_queue = str(Settings.model_fields["drive_queue"].default)
    engine.stop("drives")
    try:
        doomed = engine.start("doomed", "worker", "--queues", drive_queue, "--hostname", "doomed@%h",
                              env={"OPENFNF_FAULT_POINTS": '["driver.before_commit"]'})  # fmt: skip
        redrive_execution(sdk, "crashy", "e1")
        assert doomed.wait(60) == 137  # it died after deciding the redrive, before writing it
        engine.procs.pop("doomed")
        assert sdk.describe_execution(models.DescribeExecutionRequest(flow_name="crashy", execution_name="e1")).body.status == "Running"
    finally:
        engine.start("drives", "worker", "--queues", drive_queue, "--hostname", "d@%h")
    done = ended(sdk, "crashy", "e1")
    assert done.status == "Succeeded", done.to_map()
    types = [e.type for e in history(sdk, "crashy", "e1")]
    assert types.count("ExecutionRedriven") == 1 and types.count("ExecutionFailed") == 1
    assert calls(box, "flaky") == 2


def test_a_front_door_killed_after_reopening_loses_nothing(engine: Service, sdk: Any, box: Path) -> None:
    from openfnf.redisserver import free_port
    from tests.conftest import new_sdk_client

    create(sdk, "crashy_api", FLAKY)
    start(sdk, "crashy_api", "e1", {"dir": str(box)})
    assert ended(sdk, "crashy_api", "e1").status == "Failed"
    port = free_port()
    doomed = engine.start("doomed_api", "api", "--port", str(port), env={"OPENFNF_FAULT_POINTS": '["api.after_reopen"]'})
    try:
        with pytest.raises(Exception):  # noqa: B017 - the connection drops: the process died mid-request
            redrive_execution(new_sdk_client(f"127.0.0.1:{port}", engine.key_id, engine.secret), "crashy_api", "e1")
        assert doomed.wait(30) == 137  # reopened, then died before handing the drive to the workers
    finally:
        engine.procs.pop("doomed_api", None)
    done = ended(sdk, "crashy_api", "e1")  # the safety net (timers) drives it
    assert done.status == "Succeeded", done.to_map()
    assert calls(box, "flaky") == 2


def test_child_flows_and_redrive(sdk: Any, box: Path) -> None:
    """A parent failed because its child did. Redriving the child reports its end to a task that is done
    already (the parent is not told twice); redriving the parent starts a new child for the re-entered task."""
    create(sdk, "kid", FLAKY)
    parent = """version: v1
type: flow
steps:
  - type: task
    name: run_kid
    resourceArn: acs:fnf:::flow/kid
    pattern: sync
    inputMappings: [{target: dir, source: $input.dir}]
    serviceParams:
      Input: $
"""
    create(sdk, "parent", parent)
    start(sdk, "parent", "p1", {"dir": str(box)})
    assert ended(sdk, "parent", "p1").status == "Failed"
    parent_events = len(history(sdk, "parent", "p1"))
    (kid,) = sdk.list_executions(models.ListExecutionsRequest(flow_name="kid")).body.executions
    assert kid.status == "Failed"
    redrive_execution(sdk, "kid", kid.name)
    assert ended(sdk, "kid", kid.name).status == "Succeeded"
    assert sdk.describe_execution(models.DescribeExecutionRequest(flow_name="parent", execution_name="p1")).body.status == "Failed"
    assert len(history(sdk, "parent", "p1")) == parent_events  # its task had its report: nothing more reached it
    redrive_execution(sdk, "parent", "p1")
    done = ended(sdk, "parent", "p1")
    assert done.status == "Succeeded", done.to_map()
    kids = sdk.list_executions(models.ListExecutionsRequest(flow_name="kid")).body.executions
    assert len(kids) == 2 and all(k.status == "Succeeded" for k in kids)
    assert calls(box, "flaky") == 3


def test_redrive_runs_the_executions_own_definition_not_the_flows_current_one(sdk: Any, box: Path) -> None:
    create(sdk, "changing", FLAKY)
    start(sdk, "changing", "e1", {"dir": str(box)})
    assert ended(sdk, "changing", "e1").status == "Failed"
    replaced = "Type: StateMachine\nSpecVersion: v1\nStartAt: Nope\nStates:\n  - {Type: Fail, Name: Nope, Code: Replaced}\n"
    sdk.update_flow(models.UpdateFlowRequest(name="changing", definition=replaced))
    redrive_execution(sdk, "changing", "e1")
    done = ended(sdk, "changing", "e1")
    assert done.status == "Succeeded", done.to_map()  # the Flaky task ran again, not the new Fail state
    assert calls(box, "flaky") == 2 and "Flaky" in done.flow_definition


def test_the_older_sdk_redrives_through_its_common_request(engine: Service, sdk: Any, box: Path) -> None:
    from aliyunsdkcore.request import CommonRequest

    create(sdk, "old_sdk_flaky", FLAKY)
    start(sdk, "old_sdk_flaky", "e1", {"dir": str(box)})
    assert ended(sdk, "old_sdk_flaky", "e1").status == "Failed"
    request = CommonRequest(domain=engine.endpoint, version="2019-03-15", action_name="RedriveExecution")
    request.set_method("POST")
    request.set_protocol_type("http")
    request.add_body_params("FlowName", "old_sdk_flaky")
    request.add_body_params("ExecutionName", "e1")
    body = json.loads(engine.old_client().do_action_with_exception(request))
    assert body["Status"] == "Running" and body["RedriveCount"] == 1
    assert ended(sdk, "old_sdk_flaky", "e1").status == "Succeeded"
