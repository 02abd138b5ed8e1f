"""The flow cases of tests/fixtures/flows again, end to end: `openfnf api`, `worker`, `timers` driven by the official SDK.

Each case is created with CreateFlow, started with StartExecution (execution name and input as in
the unit run, so uuid() and $Context give the same values), awaited with DescribeExecution's
long poll, and its history read with GetExecutionHistory (all pages). The expectations are the
fixture's own: status, output, error and cause (from the terminal event), the [type, step]
history, and the time it took at least.

Tasks are answered by their `activities:` scripts: the module's service binds every resource
(`arn: "*"`, FC, MNS, HTTP:Request, ECS:..., child flows alike) to tests/scripted.py, which plays
the scripts in the workers as tests/flowcases.py scripted() plays them on the simulated engine
(real seconds for `after`, callback reports with ReportTaskSucceeded/Failed and the task token).
A case with `stop_at` is stopped with StopExecution(Error "Stopped.ByTest") that many seconds
after its start. All cases are started first, then awaited, so they wait side by side and the
module takes about as long as the longest case (30 s).

Run here: every case except those marked `simulated_clock` (new_wait_until, old_wait_path, new_wait_seconds_expr_at_limit):
their waits name absolute times chosen against the simulated clock (November 2023), which a real
run reaches long after, so the real waits would end at once and neither time nor history could match
(and the last waits a whole year).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from alibabacloud_fnf20190315 import models

from common.claims import started_event
from common.fdl import parse_definition
from common.purestart import execution_limits, run_at_start
from common.settings import Settings
from tests.conftest import Service, make_service
from tests.flowcases import EXECUTION, NOW, FlowCase, load_cases, run_case
from tests.scripted import SCRIPTS_ENV

pytestmark = pytest.mark.e2e

CASES = [c for c in load_cases() if not c.simulated_clock]
SCRIPTED = [c for c in CASES if c.activities]
DRIVE_WORKERS = 2  # solo workers on the drives queue only: a hanging call never holds up a drive
ACTIVITY_THREADS = 24  # calls in flight at once: more than the cases ever have (hangs hold theirs 30-45 s)
AWAIT_SECONDS = 150.0  # an execution still running this long after its long poll began fails the test


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """OpenFnF with every task resource bound to the scripted handler (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("flowcases")
    functions = tmp / "functions.yaml"
    functions.write_text(yaml.safe_dump({"functions": [{"arn": "*", "python": "tests.scripted:answer"}]}), encoding="utf-8")
    # The product's default (tests/conftest.py turns it off): the pure cases run to their end at their start
    # (common/purestart.py), the others on the workers; both must meet the same expectations.
    svc = make_service(tmp, workers=0, OPENFNF_PURE_AT_START_EVENTS=str(Settings.model_fields["pure_at_start_events"].default))
    try:
        # The scripted handler reports callbacks and reads histories with the service's own key.
        svc.env_extra.update({
            "OPENFNF_FUNCTIONS": str(functions), SCRIPTS_ENV: str(tmp / "scripts.json"),
            "OPENFNF_FUNCTIONS_ACCESS_KEY_ID": svc.key_id, "OPENFNF_FUNCTIONS_ACCESS_KEY_SECRET": svc.secret,
        })  # fmt: skip
        defaults = Settings.model_fields
        for i in range(DRIVE_WORKERS):
            svc.start(f"drives{i}", "worker", "--queues", str(defaults["drive_queue"].default), "--hostname", f"d{i}@%h")
        svc.start(
            "activities", "worker", "--queues", str(defaults["activity_queue"].default),
            "--pool", "threads", "--concurrency", str(ACTIVITY_THREADS), "--hostname", "a@%h",
        )  # fmt: skip
        yield svc
    finally:
        svc.stop_all()
        if svc.redis is not None:
            svc.redis.stop()


class Stop(threading.Thread):
    """StopExecution of one case, `stop_at` seconds after its start."""

    def __init__(self, service: Service, case: FlowCase) -> None:
        super().__init__(name=f"stop-{case.name}", daemon=True)
        self.service, self.case = service, case
        self.start_at = time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        assert self.case.stop_at is not None
        time.sleep(max(0.0, self.start_at + self.case.stop_at - time.monotonic()))
        try:
            self._until_the_stop_point()
            request = models.StopExecutionRequest(
                flow_name=self.case.flow_name, execution_name=EXECUTION, error="Stopped.ByTest", cause="stop_at in the fixture"
            )
            self.service.client().stop_execution(request)
        except BaseException as exc:  # reported by the test  # noqa: BLE001
            self.error = exc


    def _until_the_stop_point(self) -> None:
        """On a loaded machine the first drive can come after `stop_at`: wait until the execution has
        reached the event the recorded history has just before its stop (a condition, not a clock)."""
        history = self.case.expect.get("history")
        if not history or len(history) < 2:
            return
        before = history[-2]
        deadline = time.monotonic() + AWAIT_SECONDS
        client = self.service.client()
        while time.monotonic() < deadline:
            if before in [[e.type, e.step_name] for e in _history(client, self.case.flow_name, EXECUTION)]:
                return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def started(service: Service, sdk: Any) -> Iterator[dict[str, Any]]:
    """Every case's flow created, the scripts written, every execution started (and stops armed)."""
    flow_ids = {}
    for case in CASES:
        request = models.CreateFlowRequest(name=case.flow_name, definition=case.definition, description=case.description[:256], type="FDL")
        flow_ids[case.name] = sdk.create_flow(request).body.id
    scripts = {flow_ids[c.name]: {"flow": c.flow_name, "activities": c.activities} for c in SCRIPTED}
    (service.workdir / "scripts.json").write_text(json.dumps(scripts), encoding="utf-8")
    out: dict[str, Any] = {}
    stops = []
    for case in CASES:
        request = models.StartExecutionRequest(flow_name=case.flow_name, execution_name=EXECUTION, input=json.dumps(case.input))
        out[case.name] = sdk.start_execution(request).body
        if case.stop_at is not None:
            stop = Stop(service, case)
            stop.start()
            stops.append(stop)
            out[f"stop:{case.name}"] = stop
    yield out
    for stop in stops:
        stop.join()


def _await(sdk: Any, flow: str) -> Any:
    """The execution once it has ended (long polls, as many as it takes)."""
    deadline = time.monotonic() + AWAIT_SECONDS
    while True:
        request = models.DescribeExecutionRequest(flow_name=flow, execution_name=EXECUTION, wait_time_seconds=60)
        body = sdk.describe_execution(request).body
        if body.status not in ("Starting", "Running") or time.monotonic() > deadline:
            return body


def _history(sdk: Any, flow: str, name: str) -> list[Any]:
    events, token = [], None
    while True:
        page = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000, next_token=token)).body
        events += page.events
        token = page.next_token
        if not token:
            return events


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _ends_after(case: FlowCase) -> float:
    """Seconds from the start to the end of the execution on the simulated engine.

    The fixture's `time` is the simulated clock after its LAST event, which can be a late result
    dropped after the end (old_task_timeout: ends at 5 s, the late answer comes at 8 s); a real
    execution is over at its end, so that is what it is held to.
    """
    run = run_case(case)
    ended = next(s.now for s in run.steps if s.decision.ended)
    assert (ended - NOW) / 1000 <= case.expect["time"]
    return (ended - NOW) / 1000


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_flow_case_end_to_end(sdk: Any, started: dict[str, Any], case: FlowCase) -> None:
    flow = case.flow_name
    assert started[case.name].name == EXECUTION
    done = _await(sdk, flow)
    stop = started.get(f"stop:{case.name}")
    if stop is not None:
        stop.join()
        assert stop.error is None, stop.error
    expect = case.expect
    assert done.status == expect["status"]
    events = _history(sdk, flow, EXECUTION)
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    detail = json.loads(events[-1].event_detail)
    if "output" in expect:
        assert json.loads(done.output) == expect["output"]
        assert detail == {"output": expect["output"]}
    if "error" in expect:
        assert detail["error"] == expect["error"]
    if "cause" in expect:
        assert detail["cause"] == expect["cause"]
    if "history" in expect:
        assert [[e.type, e.step_name] for e in events] == expect["history"]
    if "time" in expect:
        assert _seconds(done.stopped_time) - _seconds(done.started_time) >= _ends_after(case) - 0.01
    assert events[0].type == "ExecutionStarted" and json.loads(events[0].event_detail) == {"input": case.input}
    assert all(0 <= e.schedule_event_id < e.event_id for e in events)


def test_every_case_run_here_has_its_own_flow_name() -> None:
    names = [c.flow_name for c in CASES]
    assert len(names) == len(set(names))


def test_every_case_but_the_simulated_clock_ones_runs_here() -> None:
    assert sorted(c.name for c in load_cases() if c not in CASES) == ["new_wait_seconds_expr_at_limit", "new_wait_until", "old_wait_path"]
    assert all(c.activities for c in CASES if "activities" in c.engine)


def test_the_pure_cases_ended_at_their_start_and_the_others_went_to_the_workers(started: dict[str, Any]) -> None:
    """Which path each case took: StartExecution answers an ended execution exactly for the cases the start runs
    itself (common/purestart.py), so the test above held both paths to the fixtures' expectations."""
    settings = Settings(_env_file=None)
    budget = Settings.model_fields["pure_at_start_events"].default
    at_start = {
        c.name for c in CASES
        if run_at_start(parse_definition(c.definition), started_event(c.input, EXECUTION, c.flow_name), NOW, execution_limits(settings), budget)
    }  # fmt: skip
    assert len(at_start) >= 10 and len(CASES) - len(at_start) >= 10  # both paths, many cases each
    assert {c.name for c in CASES if started[c.name].status not in ("Starting", "Running")} == at_start
