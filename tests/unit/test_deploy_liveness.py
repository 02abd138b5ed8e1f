"""Liveness decisions from a heartbeat (a table, the clock passed in) and the JSON log format."""
from __future__ import annotations

import contextvars
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from common.logs import (
    ContextFilter,
    JsonFormatter,
    execution_var,
    flow_var,
    make_formatter,
    request_id_var,
)
from common.settings import Settings
from worker.heartbeat import Heartbeat, check, heartbeat_path, judge

NOW = 1_000_000.0


def beat(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"pid": 1, "role": "worker", "state": "ready", "at": NOW - 1, "loop_at": NOW - 2, "task": None, "task_since": None}
    doc.update(over)
    return doc


@pytest.mark.parametrize(
    "doc, pid_alive, stuck, alive, reason",
    [
        (beat(), True, 0, True, "alive"),
        (None, True, 0, False, "no heartbeat"),
        ({"pid": 1}, True, 0, False, "unreadable"),
        (beat(at=NOW - 31), True, 0, False, "heartbeat is 31.0 s old"),
        (beat(), False, 0, False, "is gone"),
        (beat(loop_at=NOW - 40), True, 0, False, "main loop has not run"),
        # a long task blocks the loop (solo pool): alive unless it passes task_stuck_seconds
        (beat(loop_at=NOW - 600, task="openfnf.activity", task_since=NOW - 600), True, 0, True, "running openfnf.activity"),
        (beat(loop_at=NOW - 600, task="openfnf.activity", task_since=NOW - 600), True, 300, False, "has run for 600.0 s"),
        (beat(loop_at=NOW - 100, task="openfnf.drive", task_since=NOW - 100), True, 300, True, "running"),
        # a slow broker does not matter: the file says nothing about it
        (beat(state="starting", loop_at=NOW - 50), True, 0, True, "alive (starting)"),
        (beat(state="reconnecting", loop_at=NOW - 300), True, 0, True, "alive (reconnecting)"),
        (beat(state="stopping", loop_at=NOW - 300), True, 0, False, "main loop"),
    ],
)
def test_judge(doc: dict[str, Any] | None, pid_alive: bool, stuck: float, alive: bool, reason: str) -> None:
    verdict = judge(doc, NOW, stale=30, stuck=stuck, pid_alive=pid_alive)
    assert verdict.alive is alive
    assert reason in verdict.reason


def test_heartbeat_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.alive"
    settings = Settings(heartbeat_file=path, heartbeat_stale_seconds=30)
    assert heartbeat_path(settings, "worker") == path
    assert not check(settings, "worker").alive
    hb = Heartbeat(path, "worker", interval=0.05)
    hb.task_started("openfnf.drive")
    hb.start()
    try:
        doc = json.loads(path.read_text())
        assert doc["pid"] == os.getpid() and doc["task"] == "openfnf.drive"
        assert check(settings, "worker").alive
    finally:
        hb.stop()
    assert not path.exists(), "a clean stop removes the file, so a probe after exit fails at once"
    assert not check(settings, "worker").alive


def test_default_heartbeat_paths_differ_by_role() -> None:
    settings = Settings()
    assert heartbeat_path(settings, "worker") != heartbeat_path(settings, "timers")


def _emit(formatter: logging.Formatter, exc: bool = False) -> str:
    """One record through a handler with the context filter, in a fresh context (nothing set)."""
    return contextvars.Context().run(_emit_here, formatter, exc)


def _emit_here(formatter: logging.Formatter, exc: bool) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    log = logging.getLogger("openfnf.test.logs")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    try:
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed %s", "here")
        else:
            log.info("drove %d events", 3)
    finally:
        log.handlers.clear()
    return stream.getvalue()


def test_json_logs_carry_request_flow_and_execution() -> None:
    def emit_with_context() -> str:
        request_id_var.set("REQ-1")
        flow_var.set("orders")
        execution_var.set("run-7")
        return _emit_here(JsonFormatter(), False)

    line = contextvars.Context().run(emit_with_context)
    assert line.count("\n") == 1
    doc = json.loads(line)
    assert doc["message"] == "drove 3 events" and doc["level"] == "INFO" and doc["logger"] == "openfnf.test.logs"
    assert (doc["request_id"], doc["flow"], doc["execution"]) == ("REQ-1", "orders", "run-7")
    assert doc["time"].endswith("Z") and len(doc["time"]) == len("2024-01-01T00:00:00.000Z")


def test_json_logs_unset_context_is_null_and_tracebacks_stay_on_one_line() -> None:
    doc = json.loads(_emit(JsonFormatter(), exc=True))
    assert doc["request_id"] is None and doc["flow"] is None
    assert "ValueError: boom" in doc["exception"]


def test_text_logs_stay_the_default() -> None:
    assert Settings().log_format == "text"
    line = _emit(make_formatter("text"))
    assert "[req=- flow=- exec=-] drove 3 events" in line
    with pytest.raises(ValueError):
        make_formatter("xml")
