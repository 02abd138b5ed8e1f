"""Worker logs at INFO say what starts, stops, fails or is retried, not one line per task (issue 14)."""
from __future__ import annotations

from pathlib import Path

import pytest
from alibabacloud_fnf20190315 import models

from tests.conftest import running_service

pytestmark = pytest.mark.e2e

PASS = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def _run(sdk: object, names: list[str]) -> None:
    for name in names:
        sdk.start_execution(models.StartExecutionRequest(flow_name="quiet", execution_name=name))  # type: ignore[attr-defined]
    for name in names:
        done = sdk.describe_execution(  # type: ignore[attr-defined]
            models.DescribeExecutionRequest(flow_name="quiet", execution_name=name, wait_time_seconds=30)
        ).body
        assert done.status == "Succeeded"


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_no_info_line_per_task(tmp_path: Path, level: str) -> None:
    with running_service(tmp_path, workers=1, timers=0, OPENFNF_LOG_LEVEL=level) as svc:
        sdk = svc.client()
        sdk.create_flow(models.CreateFlowRequest(name="quiet", definition=PASS, description="", type="FDL"))
        _run(sdk, ["warm"])
        before = svc.log("worker0").count(" INFO ")
        _run(sdk, [f"e{i}" for i in range(10)])
        log = svc.log("worker0")
        assert log.count(" INFO ") == before, log[-3000:]  # ten more executions, no more INFO lines
        task_lines = [line for line in log.splitlines() if "Task openfnf.drive[" in line]
        if level == "INFO":
            assert task_lines == []
        else:  # at DEBUG they are there, as DEBUG lines
            assert task_lines and all(" DEBUG " in line for line in task_lines)
