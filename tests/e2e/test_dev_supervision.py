"""`openfnf dev` survives its first hour (issue 14): one instance per data dir, crashed children and
redis-server restarted, a call that kills its worker fails after a bounded number of deaths,
--credentials, and a banner that names what a user pastes."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from openfnf.redisserver import free_port
from tests.conftest import ROOT, new_sdk_client
from tests.e2e.test_dev_command import start_dev, stop_dev

pytestmark = pytest.mark.e2e

PASS = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
WAIT = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 1\n    End: true\n"


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _client(info: dict[str, str]) -> Any:
    return new_sdk_client(info["endpoint"].removeprefix("http://"), info["access key id"], info["access key secret"])


def _run(sdk: Any, flow: str, definition: str, execution: str) -> Any:
    try:
        sdk.create_flow(models.CreateFlowRequest(name=flow, definition=definition, description="", type="FDL"))
    except TeaException as err:
        if err.code != "FlowAlreadyExists":
            raise
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=execution))
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=execution, wait_time_seconds=60)).body


def _readyz(endpoint: str) -> int:
    try:
        with urllib.request.urlopen(f"{endpoint}/readyz", timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _heartbeat_pid(data_dir: Path, name: str, other_than: int = 0) -> int:
    """The pid in a child's heartbeat file, once it says ready (with a pid other than `other_than`)."""

    def read() -> int | None:
        try:
            doc = json.loads((data_dir / f"{name}.alive").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return int(doc["pid"]) if doc.get("state") == "ready" and doc["pid"] != other_than else None

    return int(wait_until(read, f"{name} ready"))


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


def test_a_second_dev_on_the_same_data_dir_refuses_before_touching_anything(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, info = start_dev(data_dir, free_port(), log)
    try:
        kept = ("credentials.yaml", "token-secret", "redis.url", "redis.sock")  # what a start writes (the socket: its inode)
        before = {name: (data_dir / name).stat() for name in kept}
        second = subprocess.run(
            [sys.executable, "-m", "openfnf", "dev", "--port", str(free_port()), "--data-dir", str(data_dir), "--workers", "1"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"pid {proc.pid}" in second.stderr and str(data_dir.resolve()) in second.stderr, second.stderr
        assert "access key secret" not in second.stdout + second.stderr  # no banner, no keys
        assert (data_dir / "redis.sock").exists()  # the first one's socket is still there
        after = {name: (data_dir / name).stat() for name in kept}
        assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == {n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()}
        assert _readyz(info["endpoint"]) == 200
        assert _run(_client(info), "still", PASS, "e1").status == "Succeeded"  # the first one serves on
    finally:
        assert stop_dev(proc) == 0, _text(log)


def test_a_killed_worker_and_timers_are_restarted_and_say_so(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, info = start_dev(data_dir, free_port(), log)
    try:
        sdk = _client(info)
        assert _run(sdk, "waits", WAIT, "before").status == "Succeeded"
        for name in ("worker-1", "timers"):
            pid = _heartbeat_pid(data_dir, name)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda name=name: f"openfnf dev: {name} was killed by SIGKILL; restarting it in" in _text(log), f"{name} restarted")
            _heartbeat_pid(data_dir, name, other_than=pid)  # a new one is up
        assert proc.poll() is None, _text(log)  # nothing else stopped
        assert _run(sdk, "waits", WAIT, "after").status == "Succeeded"  # a worker drives it, the timers fire its Wait
        assert "stopping everything" not in _text(log)
    finally:
        assert stop_dev(proc) == 0, _text(log)


def test_a_killed_redis_server_is_started_again_on_the_same_data_dir(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, info = start_dev(data_dir, free_port(), log)
    try:
        sdk = _client(info)
        assert _run(sdk, "kept", PASS, "before").status == "Succeeded"
        url = (data_dir / "redis.url").read_text().strip()
        client = redis.Redis.from_url(url)
        client.execute_command("BGREWRITEAOF")  # what is written so far is on disk however the kill lands
        wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, "the AOF rewrite")
        os.kill(int(client.info("server")["process_id"]), signal.SIGKILL)
        wait_until(lambda: "openfnf dev: redis-server is back" in _text(log), "redis-server restarted")
        assert "redis-server was killed by SIGKILL; starting it again" in _text(log)
        wait_until(lambda: _readyz(info["endpoint"]) == 200, "the front door ready again")
        assert sdk.describe_flow(models.DescribeFlowRequest(name="kept")).body.name == "kept"  # its data came back
        assert _run(sdk, "kept", PASS, "after").status == "Succeeded"
        assert proc.poll() is None
    finally:
        assert stop_dev(proc) == 0, _text(log)


def test_a_child_that_cannot_start_stops_everything_loudly(tmp_path: Path) -> None:
    """The worker and timers serve /metrics on one port, which something else holds: they exit
    at start every time; after a few tries dev says so and stops, exit status 1."""
    log = tmp_path / "dev.log"
    with open(log, "ab") as out, __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "OPENFNF_METRICS_PORT": str(taken.getsockname()[1])}
        proc = subprocess.Popen(
            [sys.executable, "-m", "openfnf", "dev", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            assert proc.wait(120) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
    text = _text(log)
    assert re.search(r"openfnf dev: (worker-1|timers) exited with \d+, 3 times in a row before it was ready; it cannot stay up", text), text
    assert "OpenFnF is running." not in text


def test_an_activity_that_kills_its_worker_fails_worker_crashed_after_the_limit(tmp_path: Path) -> None:
    functions = tmp_path / "functions.yaml"
    functions.write_text(yaml.safe_dump({"functions": [{"arn": "acs:fc:*:*:functions/crash", "python": "tests.handlers:exits_its_process"}]}))
    definition = """Type: StateMachine
SpecVersion: v1
StartAt: Crash
States:
  - Type: Task
    Name: Crash
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123456:functions/crash
    Catch:
      - Errors: [FnF.WorkerCrashed]
        Next: Caught
    End: true
  - Type: Pass
    Name: Caught
    End: true
"""
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    env = {"OPENFNF_ACTIVITY_RESCUE_MS": "1000", "OPENFNF_MAX_ACTIVITY_CRASHES": "2"}
    proc, info = start_dev(data_dir, free_port(), log, "--functions", str(functions), env=env)
    try:
        sdk = _client(info)
        sdk.create_flow(models.CreateFlowRequest(name="crashes", definition=definition, description="", type="FDL"))
        for name in ("e1", "e2"):  # two at once: a restarted worker meets the other's call as soon as it is up
            sdk.start_execution(models.StartExecutionRequest(flow_name="crashes", execution_name=name))
        for name in ("e1", "e2"):
            done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="crashes", execution_name=name, wait_time_seconds=60)).body
            if done.status == "Running":  # four deaths and restarts may take longer than one long poll
                done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="crashes", execution_name=name, wait_time_seconds=60)).body
            assert done.status == "Succeeded", _text(log)  # the Catch saw FnF.WorkerCrashed
            history = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="crashes", execution_name=name)).body
            assert any("FnF.WorkerCrashed" in (e.event_detail or "") for e in history.events)
        text = _text(log)
        assert len(re.findall(r"openfnf dev: worker-1 exited with 3; restarting", text)) == 4, text  # two deaths each, no more runs
        assert "before it was ready" not in text
        assert proc.poll() is None
    finally:
        assert stop_dev(proc) == 0, _text(log)


def test_dev_credentials_file_region_and_export_lines(tmp_path: Path) -> None:
    creds = tmp_path / "tenants.yaml"
    creds.write_text(yaml.safe_dump({"accounts": [{"id": "2222222222", "access_keys": [{"id": "LTAItenant2", "secret": "tenant-secret"}]}]}))
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, info = start_dev(data_dir, free_port(), log, "--credentials", str(creds), env={"OPENFNF_REGION": "cn-shanghai"})
    try:
        text = _text(log)
        banner = text[text.rindex("OpenFnF is running.") :]
        assert re.search(r"^\s+region:\s+cn-shanghai$", banner, re.M)
        endpoint = info["endpoint"].removeprefix("http://")
        export = f"export OPENFNF_ENDPOINT={endpoint} OPENFNF_ACCESS_KEY_ID={info['access key id']} OPENFNF_ACCESS_KEY_SECRET={info['access key secret']}"
        assert re.search(rf"^\s+{re.escape(export)}$", banner, re.M)
        assert "celery" not in banner.lower()  # printed after the workers' start-up lines, not among them
        tenant = new_sdk_client(endpoint, "LTAItenant2", "tenant-secret")
        tenant.create_flow(models.CreateFlowRequest(name="mine", definition=PASS, description="", type="FDL"))
        dev_key = _client(info)
        assert [f.name for f in dev_key.list_flows(models.ListFlowsRequest()).body.flows] == []  # another account
        assert [f.name for f in tenant.list_flows(models.ListFlowsRequest()).body.flows] == ["mine"]
    finally:
        assert stop_dev(proc) == 0, _text(log)


def _descendants(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    out = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(int(p.name))
        except (OSError, IndexError):
            continue
    return out


def test_processes_left_by_a_killed_dev_keep_the_data_dir_locked(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, info = start_dev(data_dir, free_port(), log)
    orphans = _descendants(proc.pid)
    assert len(orphans) >= 4  # redis-server, api, a worker, timers
    try:
        proc.kill()  # the supervisor dies without stopping anything
        proc.wait(30)
        second = subprocess.run(
            [sys.executable, "-m", "openfnf", "dev", "--port", str(free_port()), "--data-dir", str(data_dir), "--workers", "1"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"pid {proc.pid}) ran on data dir" in second.stderr and "still run" in second.stderr, second.stderr
        assert _readyz(info["endpoint"]) == 200  # what was left still serves: its socket was not touched
    finally:
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_sighup_stops_everything_cleanly(tmp_path: Path) -> None:
    """A closed terminal (SIGHUP) stops dev as Ctrl-C does, leaving nothing running."""
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    proc, _ = start_dev(data_dir, free_port(), log)
    children = _descendants(proc.pid)
    assert stop_dev(proc, signal.SIGHUP) == 0, _text(log)
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
