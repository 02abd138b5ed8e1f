"""The peer's side of each scenario: moto's Step Functions server, driven by boto3 and by the same load client."""
from __future__ import annotations

import time
from typing import Any

from bench.measure import Ended

ROLE = "arn:aws:iam::123456789012:role/bench"
SFN_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def create_state_machine(sfn: Any, name: str, definition: str) -> str:
    """Create a STANDARD state machine; its ARN."""
    return str(sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"])


def _all_executions(sfn: Any, arn: str, status: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": 1000}
    if status:
        kwargs["statusFilter"] = status
    while True:
        page = sfn.list_executions(**kwargs)
        out.extend(page["executions"])
        token = page.get("nextToken")
        if not token:
            return out
        kwargs["nextToken"] = token


def wait_ended(sfn: Any, arn: str, expected: int, timeout: float, poll: float = 1.0) -> Ended:
    """Poll ListExecutions (RUNNING) until none runs or timeout; times from startDate/stopDate."""
    t0 = time.monotonic()
    while True:
        running = len(_all_executions(sfn, arn, "RUNNING"))
        if running == 0 or time.monotonic() - t0 > timeout:
            break
        time.sleep(poll)
    waited = time.monotonic() - t0
    rows = _all_executions(sfn, arn)
    by_status: dict[str, int] = {}
    started, stopped = [], []
    for e in rows:
        status = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "RUNNING": "Running"}.get(e["status"], e["status"])
        by_status[status] = by_status.get(status, 0) + 1
        if e["status"] in SFN_TERMINAL and e.get("stopDate"):
            started.append(int(e["startDate"].timestamp() * 1000))
            stopped.append(int(e["stopDate"].timestamp() * 1000))
    if len(rows) < expected:
        by_status["missing"] = expected - len(rows)
    return Ended(expected, by_status, started, stopped, waited, by_status.get("Running", 0) == 0 and len(rows) >= expected)
