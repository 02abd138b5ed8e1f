"""A function handler that answers tasks from the flow fixtures' `activities:` scripts, in a real worker.

tests/e2e/test_flow_cases_e2e.py binds every resource to `tests.scripted:answer` (`arn: "*"`) and
writes the scripts to the JSON file named by OPENFNF_TEST_SCRIPTS:

    {"<flow id>": {"flow": "<flow name>", "activities": {<key>: response | [response, ...]}}}

The answers mean what tests/flowcases.py scripted() makes them mean on the simulated engine:
- key: `step:<context.step>` if the script has it, else the resource (`context.resource`);
- a list answers one call after another in the order the calls were issued, the last repeating. The
  order is read from the execution's history (the TaskScheduled events, the same order as the
  RunActivity commands), not from the order the calls reach a worker: calls issued together (Map,
  foreach, Parallel) land on several threads in any order, and a redelivered call finds its own
  place again;
- `after: s` sleeps before answering; `hang: true` never answers within any fixture's timeout
  (the call returns after HANG_SECONDS, late, and is dropped);
- `error: E, cause: C` raises an exception of class name E (the task's error), message C;
- `result: v` is returned, with `fill: {key, bytes}` adding a string of that many bytes;
- in the callback modes (`context.task_token` set) `result` is the submission's answer and `report`
  is sent with the official SDK (ReportTaskSucceeded / ReportTaskFailed) once the history shows
  the submission (TaskSubmitted), `report.after` seconds later, from a thread, as the simulated
  engine delivers it after the ActivityCompleted.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

SCRIPTS_ENV = "OPENFNF_TEST_SCRIPTS"
HANG_SECONDS = 40.0  # longer than any fixture's timeout (30 s), bounded so the worker thread ends
SUBMIT_WAIT_SECONDS = 60.0  # how long a report waits for its submission to show in the history
POLL_SECONDS = 0.1


class Event(NamedTuple):
    """The parts of a history event the ordering needs."""

    id: int
    sched: int
    type: str
    step: str
    detail: dict[str, Any]


# ------------------------------------------------------------------------ history (pure)


def _ancestor(by_id: dict[int, Event], event: Event, kind: str) -> Event | None:
    """The nearest event of `kind` up the ScheduleEventId chain from `event` (itself excluded)."""
    seen = set()
    current = by_id.get(event.sched)
    while current is not None and current.id not in seen:
        if current.type == kind:
            return current
        seen.add(current.id)
        current = by_id.get(current.sched)
    return None


def scheduled_event(events: list[Event], task_id: str) -> Event | None:
    """The TaskScheduled of the call with this activity id ("<StepEntered id>" or "<that>/<attempt>")."""
    entered, _, attempt = task_id.partition("/")
    by_id = {e.id: e for e in events}
    for event in events:
        if event.type == "TaskScheduled" and int(event.detail.get("attempt", 1)) == int(attempt or 1):
            root = _ancestor(by_id, event, "StepEntered")
            if root is not None and str(root.id) == entered:
                return event
    return None


def call_index(events: list[Event], mine: Event, key_of: Callable[[Event], str]) -> int:
    """How many calls with the same script key were issued before this one."""
    key = key_of(mine)
    return sum(1 for e in events if e.type == "TaskScheduled" and e.id < mine.id and key_of(e) == key)


def submitted(events: list[Event], mine: Event) -> bool:
    """Whether the history shows the submission of this call (its TaskSubmitted)."""
    by_id = {e.id: e for e in events}
    for event in events:
        if event.type == "TaskSubmitted":
            scheduled = _ancestor(by_id, event, "TaskScheduled")
            if scheduled is not None and scheduled.id == mine.id:
                return True
    return False


def script_key(activities: dict[str, Any], step: str, resource: str) -> str:
    """The script a call is answered from: `step:<name>` if scripted, else the resource."""
    return f"step:{step}" if f"step:{step}" in activities else resource


# ------------------------------------------------------------------------ the handler


class NoScriptedAnswer(Exception):
    """The fixture has no script for this call (the task fails with this error name)."""


def answer(event: bytes, context: Any) -> Any:
    """The handler: answers the call as the fixture's script says."""
    script = _scripts().get(context.flow_id)
    if script is None:
        raise NoScriptedAnswer(f"no script for flow id {context.flow_id}")
    activities: dict[str, Any] = script["activities"]
    key = script_key(activities, context.step, context.resource)
    if key not in activities:
        raise NoScriptedAnswer(f"no scripted answer for step {context.step} (resource {context.resource})")
    answers = activities[key] if isinstance(activities[key], list) else [activities[key]]
    sdk = _client(context)
    events = _history(sdk, script["flow"], context.execution_name)
    mine = scheduled_event(events, context.task_id)
    if mine is None:
        raise NoScriptedAnswer(f"no TaskScheduled for activity {context.task_id} in the history")
    index = call_index(events, mine, lambda e: script_key(activities, e.step, str(e.detail.get("resource", ""))))
    reply = answers[min(index, len(answers) - 1)]
    time.sleep(float(reply.get("after", 0)))
    if reply.get("hang"):
        time.sleep(HANG_SECONDS)
        return None
    if "error" in reply:
        raise type(str(reply["error"]), (Exception,), {})(str(reply.get("cause", "")))
    result = reply.get("result")
    if "fill" in reply:
        result = {**(result or {}), reply["fill"]["key"]: "x" * int(reply["fill"]["bytes"])}
    if context.task_token and reply.get("report") is not None:
        args = (sdk, script["flow"], context.execution_name, mine, context.task_token, reply["report"])
        threading.Thread(target=_report, args=args, name=f"report-{context.task_id}", daemon=True).start()
    return result


def _report(sdk: Any, flow: str, execution: str, mine: Event, token: str, report: dict[str, Any]) -> None:
    from alibabacloud_fnf20190315 import models

    deadline = time.monotonic() + SUBMIT_WAIT_SECONDS
    while not submitted(_history(sdk, flow, execution), mine):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{flow}/{execution}: the submission of event {mine.id} never showed; not reporting")
        time.sleep(POLL_SECONDS)
    time.sleep(float(report.get("after", 0)))
    if "error" in report:
        request = models.ReportTaskFailedRequest(task_token=token, error=str(report["error"]), cause=str(report.get("cause", "")))
        sdk.report_task_failed(request)
    else:
        output = report.get("output")
        text = output if isinstance(output, str) else json.dumps(output)
        sdk.report_task_succeeded(models.ReportTaskSucceededRequest(task_token=token, output=text))


def _scripts() -> dict[str, Any]:
    with open(os.environ[SCRIPTS_ENV], encoding="utf-8") as f:
        return dict(json.load(f))


def _client(context: Any) -> Any:
    """The official SDK on the service, with the keys and endpoint the context gives functions."""
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    creds = context.credentials
    return Client(Config(
        access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret, endpoint=context.endpoint,
        protocol="http", region_id="cn-hangzhou", read_timeout=30000,
    ))  # fmt: skip


def _history(sdk: Any, flow: str, execution: str) -> list[Event]:
    from alibabacloud_fnf20190315 import models

    events: list[Event] = []
    token = None
    while True:
        request = models.GetExecutionHistoryRequest(flow_name=flow, execution_name=execution, limit=1000, next_token=token)
        page = sdk.get_execution_history(request).body
        events += [Event(e.event_id, e.schedule_event_id, e.type, e.step_name, json.loads(e.event_detail or "{}")) for e in page.events]
        token = page.next_token
        if not token:
            return events
