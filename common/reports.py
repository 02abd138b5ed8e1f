"""Task reports as inbox events: ReportTaskSucceeded/Failed and a child execution's end (pure)."""
from __future__ import annotations

from typing import Any

from common import keys
from common.tokens import TaskRef

TASK_REPORTED = "TaskReported"


def succeeded_event(task_id: str, output: Any) -> dict[str, Any]:
    """The inbox event of a successful report."""
    return {"t": TASK_REPORTED, "id": task_id, "ok": True, "output": output}


def failed_event(task_id: str, error: str, cause: str) -> dict[str, Any]:
    """The inbox event of a failed report."""
    return {"t": TASK_REPORTED, "id": task_id, "ok": False, "error": error, "cause": cause}


def report_keys(ref: TaskRef) -> list[str]:
    """KEYS of report.lua for the execution a token names."""
    return [keys.execution(ref.tag), keys.inbox(ref.tag), keys.tasks(ref.tag)]
