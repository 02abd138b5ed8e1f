"""Redrive of a parent whose distributed Map failed (issues 16 and 18), through the official SDK against
moto's S3 server: the redrive goes on with the same MapRun, only the items that did not succeed run
again (their children are redriven in place), the items that succeeded keep their results, the counts
add up to Total, and a worker killed during the redrive loses nothing."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from common.settings import Settings
from openfnf.extensions import redrive_execution
from tests.conftest import ROOT, Service, running_service
from tests.redrive_handlers import calls

pytestmark = pytest.mark.e2e

FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "redrive.yaml"
ARN = "acs:fc:cn-hangzhou:123:functions/counted/LATEST"
N, FAILING = 50, (7, 23, 41)
FLOW = f"""Type: StateMachine
SpecVersion: v1
StartAt: M
States:
  - Type: Map
    Name: M
    ProcessorConfig: {{ExecutionMode: MODE}}
    ItemReader: {{SourceType: OSS_CSV, SourceParameters: {{Bucket: inbox, ObjectName: rows.csv}}}}
    ItemConstructor: {{key.$: $Item.key, fail.$: $Item.fail, hold.$: $Item.hold, dir.$: $Input.dir}}
    MaxConcurrency: {N}
    ToleratedFailureCount: 0
    WRITER
    Processor:
      StartAt: Call
      States:
        - Type: Task
          Name: Call
          Action: FC:InvokeFunction
          Parameters:
            resourceArn: {ARN}
            body:
              dir.$: $Input.dir
              key.$: $Input.key
              fail_until.$: $Input.fail
              hold.$: $Input.hold
          End: true
    End: true
"""
WRITER = "ResultWriter: {Parameters: {Bucket: results, Prefix: out}}"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.motos3 import moto_s3

    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        s3 = server.client()
        s3.create_bucket(Bucket="inbox")
        s3.create_bucket(Bucket="results")
        rows = "".join(f"i{n},{int(n in FAILING)},{'1' if n in FAILING else ''}\n" for n in range(N))
        s3.put_object(Bucket="inbox", Key="rows.csv", Body=("key,fail,hold\n" + rows).encode())
        yield server


def _engine(svc: Service, activities: str = "activities", env: dict[str, str] | None = None) -> None:
    """An activity worker with threads: the held calls (tests/redrive_handlers.py) each block one."""
    queue = str(Settings.model_fields["activity_queue"].default)
    svc.start(activities, "worker", "--queues", queue, "--pool", "threads", "--concurrency", "8", "--hostname", f"{activities}@%h", env=env)


@pytest.fixture
def svc(tmp_path: Path, moto: Any) -> Iterator[Service]:
    env = {"OPENFNF_FUNCTIONS": str(FUNCTIONS), "OPENFNF_ACTIVITY_BATCH": "1", **moto.env()}
    with running_service(tmp_path, workers=0, timers=1, **env) as service:
        service.start("drives", "worker", "--queues", str(Settings.model_fields["drive_queue"].default), "--hostname", "d@%h")
        yield service


def _wait_until(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _ended(sdk: Any, flow: str, name: str) -> Any:
    deadline = time.monotonic() + 180
    while True:
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=20)).body
        if body.status != "Running" or time.monotonic() > deadline:
            return body


def _history(sdk: Any, flow: str, name: str) -> list[Any]:
    return list(sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events)


def _runs(sdk: Any, flow: str, name: str) -> list[str]:
    return [json.loads(e.event_detail)["output"]["MapRunName"] for e in _history(sdk, flow, name) if e.type == "MapRunStarted"]


def _counts(sdk: Any, flow: str, name: str, run: str) -> tuple[str, tuple[int, ...]]:
    body = sdk.describe_map_run(models.DescribeMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run)).body
    c = body.item_counts
    assert c.pending + c.running + c.succeed + c.failed + c.aborted == c.total and c.total in (0, N)  # 0: not counted yet
    return body.status, (c.succeed, c.failed, c.aborted, c.running, c.pending)


def _first_run_fails(sdk: Any, box: Path, mode: str, writer: bool) -> tuple[str, str, str]:
    """Start the Map; once its 47 good items succeeded, let the 3 held ones fail; the parent fails."""
    flow = f"redrive_{mode.lower()}_{int(writer)}"
    definition = FLOW.replace("MODE", mode).replace("WRITER", WRITER if writer else "")
    sdk.create_flow(models.CreateFlowRequest(name=flow, definition=definition, description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name="e1", input=json.dumps({"dir": str(box)})))
    _wait_until("a MapRun", lambda: bool(_runs(sdk, flow, "e1")))
    run = _runs(sdk, flow, "e1")[0]
    _wait_until("47 items succeeded", lambda: _counts(sdk, flow, "e1", run)[1][0] == N - len(FAILING))
    assert all(calls(box, f"i{n}") == 1 for n in FAILING)  # held: called, not yet failed
    (box / "go").touch()
    first = _ended(sdk, flow, "e1")
    assert first.status == "Failed", first.to_map()
    failed = next(e for e in _history(sdk, flow, "e1") if e.type == "MapRunFailed")
    assert json.loads(failed.event_detail)["error"]["Code"] == "FnF.ExceedToleratedFailureThreshold"
    _wait_until("the run over", lambda: _counts(sdk, flow, "e1", run)[0] == "Failed")
    return flow, "e1", run


def _check_redriven(sdk: Any, box: Path, flow: str, name: str, run: str) -> Any:
    done = _ended(sdk, flow, name)
    assert done.status == "Succeeded", done.to_map()
    assert {n: calls(box, f"i{n}") for n in range(N) if calls(box, f"i{n}") != 1} == dict.fromkeys(FAILING, 2)
    assert _runs(sdk, flow, name) == [run, run]  # the redrive went on with the same MapRun
    assert _counts(sdk, flow, name, run) == ("Succeeded", (N, 0, 0, 0, 0))
    children = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, map_run_name=run, limit=100)).body.executions
    assert [c.name for c in children] == [f"m{run}-{i}" for i in range(N)]  # one child per item, as before
    assert {c.status for c in children} == {"Succeeded"}
    types = [e.type for e in _history(sdk, flow, name)]
    assert types.count("ExecutionRedriven") == 1 and types.count("MapRunFailed") == 1 and types[-1] == "ExecutionSucceeded"
    child = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=f"m{run}-{FAILING[0]}", limit=100))
    assert [e.type for e in child.body.events].count("ExecutionRedriven") == 1  # redriven in place, its history kept
    return done


@pytest.mark.timeout(300)
def test_redrive_reruns_only_the_failed_items_and_writes_every_result(svc: Service, moto: Any, tmp_path: Path) -> None:
    _engine(svc)
    sdk = svc.client()
    box = tmp_path / "calls"
    box.mkdir()
    flow, name, run = _first_run_fails(sdk, box, "Standard", writer=True)
    answer = redrive_execution(sdk, flow, name)
    assert answer["Status"] == "Running" and answer["RedriveCount"] == 1
    done = _check_redriven(sdk, box, flow, name, run)
    s3 = moto.client()
    key = json.loads(done.output)["ResultWriterDetails"]["Key"]
    manifest = json.loads(s3.get_object(Bucket="results", Key=key)["Body"].read())
    assert manifest["MapRunName"] == run and manifest["ResultFiles"]["FAILED"] == []
    entries = [e for f in manifest["ResultFiles"]["SUCCEEDED"] for e in json.loads(s3.get_object(Bucket="results", Key=f["Key"])["Body"].read())]
    assert [e["ExecutionName"] for e in entries] == [f"m{run}-{i}" for i in range(N)]  # every item, in item order
    assert [json.loads(e["Output"])["Body"]["key"] for e in entries] == [f"i{i}" for i in range(N)]
    assert [json.loads(e["Output"])["Body"]["calls"] for e in entries] == [2 if i in FAILING else 1 for i in range(N)]


@pytest.mark.timeout(300)
def test_redrive_of_express_children_gives_the_output_in_item_order(svc: Service, tmp_path: Path) -> None:
    _engine(svc)
    sdk = svc.client()
    box = tmp_path / "calls"
    box.mkdir()
    flow, name, run = _first_run_fails(sdk, box, "Express", writer=False)
    redrive_execution(sdk, flow, name)
    done = _check_redriven(sdk, box, flow, name, run)
    items = json.loads(done.output)["Items"]
    assert [(o["Body"]["key"], o["Body"]["calls"]) for o in items] == [(f"i{i}", 2 if i in FAILING else 1) for i in range(N)]


@pytest.mark.timeout(300)
def test_worker_killed_during_the_redrive_loses_nothing(svc: Service, tmp_path: Path) -> None:
    _engine(svc)
    sdk = svc.client()
    box = tmp_path / "calls"
    box.mkdir()
    flow, name, run = _first_run_fails(sdk, box, "Standard", writer=False)
    svc.stop("activities")
    _engine(svc, "doomed", env={"OPENFNF_FAULT_POINTS": '["maprun.after_reserve_redrive"]'})
    redrive_execution(sdk, flow, name)
    assert svc.procs["doomed"].wait(60) == 137  # killed between reserving the children to redrive and redriving them
    svc.procs.pop("doomed")
    status, (ok, failed, aborted, running, _) = _counts(sdk, flow, name, run)
    assert status == "Running" and ok == N - len(FAILING) and running == len(FAILING) and failed == aborted == 0
    _engine(svc, "again")
    _check_redriven(sdk, box, flow, name, run)


@pytest.mark.timeout(300)
def test_redrive_after_the_parent_was_stopped_goes_on_with_the_aborted_run(svc: Service, moto: Any, tmp_path: Path) -> None:
    _engine(svc)
    sdk = svc.client()
    box = tmp_path / "calls"
    box.mkdir()
    s3 = moto.client()
    rows = "".join(f"i{n},0,{'1' if n in FAILING else ''}\n" for n in range(N))  # the held items do not fail
    s3.put_object(Bucket="inbox", Key="held.csv", Body=("key,fail,hold\n" + rows).encode())
    flow = "redrive_stopped"
    sdk.create_flow(models.CreateFlowRequest(name=flow, definition=FLOW.replace("MODE", "Standard").replace("WRITER", "").replace("rows.csv", "held.csv"), description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name="e1", input=json.dumps({"dir": str(box)})))
    _wait_until("a MapRun", lambda: bool(_runs(sdk, flow, "e1")))
    run = _runs(sdk, flow, "e1")[0]
    _wait_until("47 items succeeded", lambda: _counts(sdk, flow, "e1", run)[1][0] == N - len(FAILING))
    sdk.stop_execution(models.StopExecutionRequest(flow_name=flow, execution_name="e1", error="Halt", cause="by the test"))
    assert _ended(sdk, flow, "e1").status == "Stopped"
    _wait_until("the run aborted", lambda: _counts(sdk, flow, "e1", run)[0] == "Aborted")
    redrive_execution(sdk, flow, "e1")  # its children may still be stopping: the run waits for them, then reopens
    _wait_until("the held items called again", lambda: all(calls(box, f"i{n}") == 2 for n in FAILING))
    (box / "go").touch()
    done = _ended(sdk, flow, "e1")
    assert done.status == "Succeeded", done.to_map()
    assert {n: calls(box, f"i{n}") for n in range(N) if calls(box, f"i{n}") != 1} == dict.fromkeys(FAILING, 2)
    assert _runs(sdk, flow, "e1") == [run, run]
    assert _counts(sdk, flow, "e1", run) == ("Succeeded", (N, 0, 0, 0, 0))
    items = json.loads(done.output)["Items"]
    assert [o["Body"]["key"] for o in items] == [f"i{i}" for i in range(N)]
