"""`openfnf dev` as a user runs it: prints endpoint and keys, stops cleanly, keeps data across restarts."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port, listening_pids
from tests.conftest import ROOT, new_sdk_client

pytestmark = pytest.mark.e2e


def start_dev(
    data_dir: Path, port: int, log: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """Start `openfnf dev` (with `env` added to this environment) and parse what it prints."""
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "openfnf", "dev", "--port", str(port), "--data-dir", str(data_dir), "--workers", "1", *extra],
        stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Press Ctrl-C to stop." in text:
            found = dict(re.findall(r"^\s+(endpoint|access key id|access key secret):\s+(\S+)", text, re.M))
            if len(found) == 3:
                return proc, found
        if proc.poll() is not None:
            raise AssertionError(f"openfnf dev exited with {proc.returncode}:\n{text}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("openfnf dev did not print its endpoint in time:\n" + log.read_text(errors="replace"))


def stop_dev(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    proc.send_signal(sig)
    return proc.wait(60)


def _client(info: dict[str, str]) -> Any:
    return new_sdk_client(info["endpoint"].removeprefix("http://"), info["access key id"], info["access key secret"])


def _children_of(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # no procps: read /proc
        out = "\n".join(
            p.name for p in Path("/proc").iterdir()
            if p.name.isdigit() and (p / "stat").exists() and (p / "stat").read_text().split()[3] == str(pid)
        )  # fmt: skip
    return [int(x) for x in out.split()]


def test_dev_runs_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    port = free_port()
    proc, info = start_dev(data_dir, port, log)
    assert info["endpoint"] == f"http://127.0.0.1:{port}"
    children = _children_of(proc.pid)
    try:
        sdk = _client(info)
        definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
        sdk.create_flow(models.CreateFlowRequest(name="kept", definition=definition, description="survives", type="FDL"))
        sdk.start_execution(models.StartExecutionRequest(flow_name="kept", execution_name="done1", input='{"v": 1}'))
        first = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="kept", execution_name="done1", wait_time_seconds=30)).body
        assert first.status == "Succeeded" and json.loads(first.output) == {"v": 1}
    finally:
        code = stop_dev(proc)
    assert code == 0, log.read_text(errors="replace")
    assert len(children) >= 4  # redis-server, api, a worker, timers
    for child in children:  # every child is gone
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    assert (data_dir / "appendonly.aof").exists() or any(data_dir.glob("appendonly*"))

    proc, again = start_dev(data_dir, port, tmp_path / "dev-again.log")
    try:
        assert again["access key id"] == info["access key id"]  # the generated key is kept in the data dir
        sdk = _client(again)
        flow = sdk.describe_flow(models.DescribeFlowRequest(name="kept")).body
        assert flow.description == "survives"
        done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="kept", execution_name="done1")).body
        assert (done.status, done.output, done.started_time, done.stopped_time) == (
            first.status, first.output, first.started_time, first.stopped_time,
        )  # fmt: skip
        history = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="kept", execution_name="done1")).body
        assert [e.event_id for e in history.events] == [1, 2, 3, 4, 5, 6]
    finally:
        assert stop_dev(proc, signal.SIGTERM) == 0


def test_dev_runs_several_front_doors_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    proc, info = start_dev(tmp_path / "data", port, tmp_path / "dev.log", "--api-processes", "2")
    try:
        listening = listening_pids(port, _children_of(proc.pid))  # dev prints once every front door listens
        assert len(listening) == 2, f"two front door processes listen on {port}: {listening}"
        definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
        _client(info).create_flow(models.CreateFlowRequest(name="two", definition=definition, description="", type="FDL"))
        for i in range(20):  # a new client (new connections) each time: the kernel spreads them over both
            sdk = _client(info)
            sdk.start_execution(models.StartExecutionRequest(flow_name="two", execution_name=f"e{i}"))
            done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="two", execution_name=f"e{i}", wait_time_seconds=30))
            assert done.body.status == "Succeeded"
    finally:
        assert stop_dev(proc) == 0, (tmp_path / "dev.log").read_text(errors="replace")


def test_readme_example_prints_succeeded(tmp_path: Path) -> None:
    """The README's SDK example, pasted into a file, prints Succeeded and the expected output."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", readme, re.S)
    assert example, "README.md has no python example"
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    port = free_port()
    proc, info = start_dev(data_dir, port, log)
    try:
        script = tmp_path / "example.py"
        script.write_text(example.group(1), encoding="utf-8")
        env = {
            "PATH": "/usr/bin:/bin",
            "OPENFNF_ENDPOINT": info["endpoint"].removeprefix("http://"),
            "OPENFNF_ACCESS_KEY_ID": info["access key id"],
            "OPENFNF_ACCESS_KEY_SECRET": info["access key secret"],
        }
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.strip().splitlines()
        assert lines[0] == "Succeeded"
        assert json.loads(lines[1]) == {"greeting": "Hello, world"}
    finally:
        stop_dev(proc)
