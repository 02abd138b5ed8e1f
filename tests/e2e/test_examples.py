"""The examples run end to end from the README's run command (`openfnf dev --functions examples/functions.yaml`)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port
from tests.conftest import ROOT, new_sdk_client

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"


def test_callback_example_and_parent_child_pair_run_from_openfnf_dev(tmp_path: Path) -> None:
    out = open(tmp_path / "dev.log", "ab")  # noqa: SIM115
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "openfnf", "dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--functions", str(EXAMPLES / "functions.yaml")],
        stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        info = _wait_ready(tmp_path / "dev.log", proc)
        sdk = new_sdk_client(f"127.0.0.1:{port}", info["access key id"], info["access key secret"])
        for name, file in (("example_callback", "callback.yaml"), ("example_child", "child.yaml"),
                           ("example_callback_child", "callback_child.yaml"), ("example_parent", "parent.yaml")):
            definition = (EXAMPLES / file).read_text(encoding="utf-8")
            sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description=file, type="FDL"))
        assert _run(sdk, "example_callback", {"order": "o-42"}) == {"approved": True, "order": "o-42"}
        assert _run(sdk, "example_parent", {"items": ["b", "a"]}) == {"reserved": 2, "confirmed": ["a", "b"]}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def _run(sdk: Any, flow: str, data: dict[str, Any]) -> Any:
    name = sdk.start_execution(models.StartExecutionRequest(flow_name=flow, input=json.dumps(data))).body.name
    body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=60)).body
    assert body.status == "Succeeded", (flow, body.status)
    return json.loads(body.output)


def _wait_ready(log: Path, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    import re

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = dict(re.findall(r"^\s+(endpoint|access key id|access key secret):\s+(\S+)", text, re.M))
        if "Press Ctrl-C to stop." in text and len(found) == 3:
            return found
        assert proc.poll() is None, text
        time.sleep(0.1)
    raise AssertionError(log.read_text(errors="replace"))


def test_each_example_runs_with_its_documented_command(tmp_path: Path) -> None:
    """README: `.venv/bin/python examples/run.py NAME [INPUT]` in a second terminal, after the export
    line dev prints; it creates the flows it needs. `parent` without items fails with a clear error."""
    import os
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\.venv/bin/python examples/run\.py (\w+)(?: '([^']*)')?", readme, re.M)
    assert {name for name, _ in documented} == {"callback", "child", "parent"}
    out = open(tmp_path / "dev.log", "ab")  # noqa: SIM115
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "openfnf", "dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--workers", "1", "--functions", str(EXAMPLES / "functions.yaml")],
        stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_ready(tmp_path / "dev.log", proc)
        export = re.search(r"^\s+export (.+)$", (tmp_path / "dev.log").read_text(errors="replace"), re.M)
        assert export, "dev prints the export line"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}, **dict(kv.split("=", 1) for kv in export.group(1).split())}

        def run(*args: str) -> tuple[int, list[str]]:
            done = subprocess.run([sys.executable, "examples/run.py", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
            return done.returncode, done.stdout.splitlines()

        expected = {
            ("callback", ""): {"approved": True, "order": "o-42"},
            ("child", ""): {"reserved": 2},
            ("parent", ""): {"reserved": 2, "confirmed": ["a", "b"]},
            ("parent", '{"items": ["x"]}'): {"reserved": 1, "confirmed": ["x"]},
        }
        for name, data in documented:
            code, lines = run(name, *([data] if data else []))
            assert (code, lines[0]) == (0, "Succeeded"), lines
            assert json.loads(lines[1]) == expected[(name, data)]
        code, lines = run("parent", "{}")  # no items: fails at once with a clear error, not Running forever
        assert (code, lines[0]) == (1, "Failed"), lines
        assert json.loads(lines[1])["error"] == "Example.MissingItems"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
