"""Tracing (issue 18): real front door, worker and timers processes export their spans over OTLP/HTTP
to a receiver in the test, which checks the tree of one execution through the official SDK."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port
from tests.conftest import ROOT, Service, running_service
from tests.otlp import Receiver, Span

pytestmark = pytest.mark.e2e

FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"

CHILD = """Type: StateMachine
SpecVersion: v1
StartAt: Work
States:
  - Type: Pass
    Name: Work
    OutputConstructor:
      child: done
    End: true
"""


def parent_flow(hook_url: str) -> str:
    """A Parallel of two function tasks, a Wait, an HTTP task, a callback task and a child flow."""
    return f"""Type: StateMachine
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
              body: {{a: 1, b: 2}}
            End: true
      - StartAt: B
        States:
          - Type: Task
            Name: B
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
              body: {{a: 10, b: 20}}
            End: true
    Next: Pause
  - Type: Wait
    Name: Pause
    Seconds: 1
    Next: Call
  - Type: Task
    Name: Call
    Action: HTTP:Request
    Parameters:
      method: GET
      url: {hook_url}
    Next: Review
  - Type: Task
    Name: Review
    Action: FC:InvokeFunction
    TaskMode: WaitForCustomCallback
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/keep_token/LATEST
      body:
        token.$: $Context.Current.TaskToken
    Next: Child
  - Type: Task
    Name: Child
    Action: FNF:StartExecution
    TaskMode: WaitForSystemCallback
    Parameters:
      resourceArn: acs:fnf:::flow/trace_child
      ExecutionName: kid
    End: true
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    got = Receiver().start()
    try:
        yield got
    finally:
        got.stop()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Service]:
    env = {
        "OPENFNF_FUNCTIONS": str(FUNCTIONS),
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans leave each process within a tenth of a second
    }
    with running_service(tmp_path_factory.mktemp("traced"), workers=1, **env) as svc:
        yield svc


def _by_name(spans: list[Span], name: str, **attrs: Any) -> list[Span]:
    return [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())]


def _one(spans: list[Span], name: str, **attrs: Any) -> Span:
    found = _by_name(spans, name, **attrs)
    assert len(found) == 1, (name, attrs, found)
    return found[0]


def test_one_execution_is_one_trace_across_the_processes(traced: Service, receiver: Receiver) -> None:
    sdk = traced.client()
    sdk.create_flow(models.CreateFlowRequest(name="trace_child", definition=CHILD, description="", type="FDL"))
    sdk.create_flow(models.CreateFlowRequest(name="traced", definition=parent_flow(f"{receiver.endpoint}/hook"), description="", type="FDL"))
    sdk.start_execution(models.StartExecutionRequest(flow_name="traced", execution_name="e1", input="{}"))
    # the callback task waits (redis-py 8 reads with a 5 s socket timeout by default: longer for BLPOP)
    got = redis.Redis.from_url(traced.redis_url, socket_timeout=70).blpop("test:tokens", timeout=60)
    assert got is not None, traced.log("worker0")
    token = got[1].decode()
    sdk.report_task_succeeded(models.ReportTaskSucceededRequest(task_token=token, output='{"approved": true}'))
    done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="traced", execution_name="e1", wait_time_seconds=60)).body
    assert done.status == "Succeeded", (done.status, done.to_map())

    def complete(spans: list[Span]) -> bool:
        reports = _by_name(spans, "openfnf.report")
        ended = [s for s in _by_name(spans, "openfnf.drive", **{"openfnf.execution": "e1"}) if s.attributes.get("openfnf.ended")]
        return len(reports) >= 2 and bool(ended) and bool(_by_name(spans, "openfnf.timer"))

    spans = receiver.wait_for(complete, timeout=60)

    # The StartExecution request span (aiohttp's server instrumentation, named after the action) roots the trace.
    start = _one(spans, "StartExecution", **{"openfnf.execution": "e1"})
    assert start.service == "openfnf-api" and start.attributes["openfnf.flow"] == "traced"
    trace = start.trace_id
    mine = [s for s in spans if s.trace_id == trace]
    assert {s.trace_id for s in spans if s.attributes.get("openfnf.execution") == "e1"} == {trace}  # one trace

    # Every drive of e1 is in the trace, directly under the StartExecution span, and done by the worker.
    drives = _by_name(spans, "openfnf.drive", **{"openfnf.execution": "e1"})
    assert len(drives) >= 5
    assert {(d.trace_id, d.parent, d.service) for d in drives} == {(trace, start.span_id, "openfnf-worker")}
    assert "ExecutionSucceeded" in {d.attributes.get("openfnf.ended") for d in drives}

    # Each activity (A and B in parallel, the HTTP call, the callback task, the child's start) is under one of those drives.
    drive_ids = {d.span_id for d in drives}
    activities = {s.attributes["openfnf.state"]: s for s in _by_name(mine, "openfnf.activity")}
    assert set(activities) == {"A", "B", "Call", "Review", "Child"}
    for state, act in activities.items():
        assert act.parent in drive_ids, state
        assert act.attributes["openfnf.execution"] == "e1" and act.attributes["openfnf.attempt"] == 1
    assert activities["Call"].attributes["openfnf.activity.kind"] == "http"

    # The HTTP task's endpoint got a traceparent naming the HTTP activity's span.
    hooked = [h for h in receiver.hooks if "traceparent" in h]
    assert hooked, receiver.hooks
    version, trace_id, parent_id, _ = hooked[-1]["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", trace, activities["Call"].span_id)

    # The Wait's timer fired in the timers process, in the execution's trace.
    timer = _one(spans, "openfnf.timer", **{"openfnf.execution": "e1"})
    assert (timer.trace_id, timer.parent, timer.service) == (trace, start.span_id, "openfnf-timers")

    # The callback, reported later by a client, is in the trace and links back to the task that waited.
    client_report = _one(spans, "openfnf.report", **{"openfnf.reporter": "client"})
    assert client_report.trace_id == trace and client_report.parent == start.span_id
    assert (trace, activities["Review"].span_id) in client_report.links

    # The child execution has its own trace, whose root links to the parent's activity that started it...
    child_root = _one(spans, "openfnf.child.start", **{"openfnf.execution": "kid"})
    assert child_root.trace_id != trace and child_root.parent == ""
    assert (trace, activities["Child"].span_id) in child_root.links
    child_drives = _by_name(spans, "openfnf.drive", **{"openfnf.execution": "kid"})
    assert child_drives and {(d.trace_id, d.parent) for d in child_drives} == {(child_root.trace_id, child_root.span_id)}
    # ...and its end, reported by the service to the parent's waiting task, is in the parent's trace.
    service_report = _one(spans, "openfnf.report", **{"openfnf.reporter": "service"})
    assert service_report.trace_id == trace and (trace, activities["Child"].span_id) in service_report.links
    assert any(link[0] == child_root.trace_id for link in service_report.links)  # and links the child's drive that ended it


def test_probes_are_not_traced_and_every_process_names_its_service(traced: Service, receiver: Receiver) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://{traced.endpoint}/healthz", timeout=5) as resp:
        assert resp.status == 200
    sdk = traced.client()
    sdk.list_flows(models.ListFlowsRequest(limit=10))
    with pytest.raises(Exception, match="ExecutionNotExists"):
        sdk.describe_execution(models.DescribeExecutionRequest(flow_name="trace_child", execution_name="nobody"))
    spans = receiver.wait_for(lambda s: bool(_by_name(s, "ListFlows")) and bool(_by_name(s, "DescribeExecution", **{"http.response.status_code": 404})))
    assert not [s for s in spans if s.attributes.get("url.path") in ("/healthz", "/readyz", "/metrics")]
    listed = _by_name(spans, "ListFlows")[0]
    assert listed.attributes["http.response.status_code"] == 200 and listed.attributes["url.path"] == "/"
    assert listed.kind == 2 and listed.attributes["openfnf.action"] == "ListFlows"  # SPAN_KIND_SERVER
    refused = _one(spans, "DescribeExecution", **{"http.response.status_code": 404})
    assert refused.attributes["openfnf.error"] == "ExecutionNotExists"
    assert {"openfnf-api", "openfnf-worker", "openfnf-timers"} <= {s.service for s in spans}


def test_a_scheduled_execution_is_a_trace_started_by_the_timers(traced: Service, receiver: Receiver) -> None:
    sdk = traced.client()
    sdk.create_flow(models.CreateFlowRequest(name="ticked", definition=CHILD, description="", type="FDL"))
    sdk.create_schedule(models.CreateScheduleRequest(flow_name="ticked", schedule_name="often", cron_expression="@every 1s", enable=True))
    try:
        def fired(spans: list[Span]) -> bool:
            roots = _by_name(spans, "openfnf.schedule.start", **{"openfnf.flow": "ticked"})
            return any(s.trace_id == r.trace_id for r in roots for s in _by_name(spans, "openfnf.drive"))

        spans = receiver.wait_for(fired, timeout=60)
    finally:
        sdk.delete_schedule(models.DeleteScheduleRequest(flow_name="ticked", schedule_name="often"))
    root = next(r for r in _by_name(spans, "openfnf.schedule.start", **{"openfnf.flow": "ticked"}) if r.parent == "")
    assert root.service == "openfnf-timers" and root.attributes["openfnf.schedule"] == "often"
    drives = [s for s in _by_name(spans, "openfnf.drive", **{"openfnf.execution": root.attributes["openfnf.execution"]})]
    assert drives and {(d.trace_id, d.parent) for d in drives} == {(root.trace_id, root.span_id)}


def test_a_callers_traceparent_is_continued_by_the_execution(traced: Service, receiver: Receiver) -> None:
    """StartExecution sent with a `traceparent` (the client's own span): the execution joins that trace."""
    import urllib.request

    from tests.frontdoor import FORM_HEADERS, signed_request

    sdk = traced.client()
    sdk.create_flow(models.CreateFlowRequest(name="joined", definition=CHILD, description="", type="FDL"))
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    path, body = signed_request("StartExecution", {"FlowName": "joined", "ExecutionName": "j1"}, key_id=traced.key_id, secret=traced.secret)
    headers = {**FORM_HEADERS, "traceparent": f"00-{caller_trace}-{caller_span}-01"}
    request = urllib.request.Request(f"http://{traced.endpoint}{path}", data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert json.loads(resp.read())["Name"] == "j1"
    spans = receiver.wait_for(lambda s: bool(
        _by_name(s, "openfnf.drive", **{"openfnf.execution": "j1", "openfnf.ended": "ExecutionSucceeded"})
        and _by_name(s, "StartExecution", **{"openfnf.execution": "j1"})
    ))  # fmt: skip
    start = _one(spans, "StartExecution", **{"openfnf.execution": "j1"})
    assert (start.trace_id, start.parent) == (caller_trace, caller_span)
    assert {d.trace_id for d in _by_name(spans, "openfnf.drive", **{"openfnf.execution": "j1"})} == {caller_trace}


def test_openfnf_dev_traces_every_process_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.e2e.test_dev_command import _client, start_dev, stop_dev

    receiver = Receiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    proc, info = start_dev(tmp_path / "data", free_port(), tmp_path / "dev.log")
    try:
        sdk = _client(info)
        waits = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 1\n    End: true\n"
        sdk.create_flow(models.CreateFlowRequest(name="waits", definition=waits, description="", type="FDL"))
        sdk.start_execution(models.StartExecutionRequest(flow_name="waits", execution_name="d1"))
        spans = receiver.wait_for(lambda s: bool(
            _by_name(s, "openfnf.drive", **{"openfnf.execution": "d1", "openfnf.ended": "ExecutionSucceeded"})
            and _by_name(s, "StartExecution", **{"openfnf.execution": "d1"}) and _by_name(s, "openfnf.timer")
        ), timeout=60)  # fmt: skip
        start = _one(spans, "StartExecution", **{"openfnf.execution": "d1"})
        mine = {(s.service, s.name) for s in spans if s.trace_id == start.trace_id}
        assert {("openfnf-api", "StartExecution"), ("openfnf-worker", "openfnf.drive"), ("openfnf-timers", "openfnf.timer")} <= mine
    finally:
        assert stop_dev(proc) == 0
        receiver.stop()
