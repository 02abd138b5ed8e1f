"""`openfnf loadtest` run exactly as the README shows (only port, data dir and duration changed), and chaos under load."""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from click.testing import CliRunner
from Tea.exceptions import TeaException

from openfnf.cli import main
from openfnf.loadreport import build_report
from openfnf.loadtest import LoadConfig, run_load, wait_finished
from openfnf.redisserver import free_port
from tests.conftest import ROOT, new_sdk_client

pytestmark = pytest.mark.e2e

CHAOS_SEED = 14  # OPENFNF_CHAOS_SEED of the dev front door: its chaos draws are known in advance
FLOW = "Type: StateMachine\nSpecVersion: v1\nName: {name}\nStartAt: Greet\nStates:\n  - Type: Pass\n    Name: Greet\n    End: true\n"


def readme_commands() -> list[str]:
    """The shell commands of the README's load-testing example, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Load testing your client's throttling", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "openfnf loadtest" in b)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    endpoint: str
    key_id: str
    secret: str
    log: Path

    def sdk(self) -> Any:
        return new_sdk_client(self.endpoint.removeprefix("http://"), self.key_id, self.secret)

    def env(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")},
                "OPENFNF_ACCESS_KEY_ID": self.key_id, "OPENFNF_ACCESS_KEY_SECRET": self.secret}  # fmt: skip

    def run(self, line: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a README command line against this dev instance."""
        line = line.replace(".openfnf", str(self.data_dir)).replace("http://127.0.0.1:8080", self.endpoint)
        argv = shlex.split(os.path.expandvars(line.replace("$OPENFNF_ACCESS_KEY_ID", self.key_id).replace("$OPENFNF_ACCESS_KEY_SECRET", self.secret)))
        assert argv[0] == "openfnf", line
        return subprocess.run([sys.executable, "-m", "openfnf", *argv[1:]], capture_output=True, text=True,
                              cwd=self.data_dir.parent, env=self.env(), check=check, timeout=180)  # fmt: skip


    def cli(self, line: str) -> str:
        """Run a `throttle`/`chaos` command line in this process (same code, no new interpreter); its output."""
        argv = shlex.split(line.replace(".openfnf", str(self.data_dir)))
        assert argv[0] == "openfnf", line
        result = CliRunner().invoke(main, argv[1:])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """`openfnf dev` started with the README's first command (plus a free port and a temporary data dir)."""
    commands = readme_commands()
    assert commands[0].startswith("openfnf dev"), commands
    home = tmp_path_factory.mktemp("readme")
    data_dir, log = home / ".openfnf", home / "dev.log"
    argv = shlex.split(commands[0])[1:] + ["--port", str(free_port()), "--data-dir", str(data_dir), "--workers", "1"]
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    env = {**os.environ, "OPENFNF_CHAOS_SEED": str(CHAOS_SEED)}
    proc = subprocess.Popen([sys.executable, "-m", "openfnf", *argv], stdout=out, stderr=subprocess.STDOUT, cwd=home, env=env)
    try:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        found = dict(re.findall(r"^\s+(endpoint|access key id|access key secret):\s+(\S+)", log.read_text(), re.M))
        yield Dev(proc, data_dir, found["endpoint"], found["access key id"], found["access key secret"], log)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        out.close()


def load(dev: Dev, *, flow: str, rate: float, duration: float, unique_names: bool = True, check: bool = False) -> dict[str, Any]:
    """The load generator in this process (the CLI's own functions, without the chart): its report."""
    cfg = LoadConfig(endpoints=[dev.endpoint], key_id=dev.key_id, secret=dev.secret, action="StartExecution",
                     rate=rate, duration=duration, flow=flow, unique_names=unique_names)  # fmt: skip
    result = asyncio.run(run_load(cfg))
    finished = asyncio.run(wait_finished(cfg, {x.name for x in result.samples if x.name}, 30)) if check else None
    return build_report(cfg, result, finished)


def test_the_readme_load_test_produces_the_table_and_the_chart(dev: Dev) -> None:
    commands = readme_commands()
    dev.sdk().create_flow(models.CreateFlowRequest(name="hello", definition=FLOW.format(name="hello"), description="t", type="FDL"))
    shown = ""
    for line in commands[1:]:
        if line.startswith("openfnf loadtest"):
            load = line
        else:
            shown = dev.run(line).stdout
    # the dev front door seeded the cloud profile; the README's `throttle set` replaced StartExecution's rule
    assert re.search(r"^account +StartExecution +\* +50 +10$", shown, re.M), shown
    assert re.search(r"^account +DescribeExecution +\* +5 +50$", shown, re.M), shown
    assert "--duration 30s" in load
    report_dir = dev.data_dir.parent / "loadtest-report"
    done = dev.run(load.replace("--duration 30s", "--duration 3s"))
    table = done.stdout
    for label in ("offered rate", "achieved rate", "concurrency", "answers", "429 ResourceThrottled", "latency ms", "all finished"):
        assert label in table, table
    assert re.search(r"latency ms +p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +max [\d.]+", table), table
    assert "achieved" in done.stderr and "sent" in done.stderr  # the live progress line
    report = json.loads((report_dir / "report.json").read_text())
    s = report["summary"]
    assert s["requests"] == 600 and s["other"] == 0 and s["ok"] + s["throttled"] == 600
    # Never more than the rule allows. (The exact count is test_throttling.py's accuracy test: with
    # the README's burst of 10 at 50/s, a stall of a busy test machine longer than 0.2 s lets the
    # bucket overflow, so fewer pass; that is the limiter being right, not wrong.)
    assert 10 <= s["ok"] <= 10 + 50 * s["send_span_s"] * 1.05 + 2, s
    assert report["finished"] == {"accepted": s["ok"], "finished": s["ok"], "by_status": {"Succeeded": s["ok"]}, "all_finished": True}
    assert f"all finished        yes: {s['ok']} of {s['ok']}" in table
    assert [row["second"] for row in report["per_second"]] == [0, 1, 2]
    assert sum(row["ok"] for row in report["per_second"]) == s["ok"]
    import matplotlib.image

    chart = report_dir / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(str(chart)).shape[:2] == (700, 1000)


def test_chaos_under_load_fails_a_share_and_changes_nothing(dev: Dev) -> None:
    sdk = dev.sdk()
    sdk.create_flow(models.CreateFlowRequest(name="chaotic", definition=FLOW.format(name="chaotic"), description="t", type="FDL"))
    dev.cli("openfnf throttle clear --data-dir .openfnf")
    dev.cli("openfnf chaos set --action StartExecution --error InternalServerError --rate 0.3 --data-dir .openfnf")
    assert re.search(r"^StartExecution +InternalServerError +0.3$", dev.cli("openfnf throttle show --data-dir .openfnf"), re.M)
    # A probe written last: once ListFlows fails, the front door has read everything written before it.
    dev.cli("openfnf chaos set --action ListFlows --rate 1 --data-dir .openfnf")
    deadline = time.monotonic() + 15
    while True:
        try:
            sdk.list_flows(models.ListFlowsRequest())
        except TeaException as exc:
            if exc.code == "InternalServerError":
                break
        assert time.monotonic() < deadline, "the chaos rules were not picked up"
        time.sleep(0.05)
    s = load(dev, flow="chaotic", rate=100, duration=2)["summary"]
    failed = s["codes"].get("500 InternalServerError", 0)
    assert s["codes"].keys() <= {"200", "500 InternalServerError"}, s["codes"]
    # The front door's seeded draws: the probe's (ListFlows at rate 1 takes one), then one per StartExecution.
    draws = random.Random(CHAOS_SEED)
    draws.random()
    assert failed == sum(draws.random() < 0.3 for _ in range(s["requests"])), s  # about 30% of 200
    listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="chaotic", limit=100)).body
    names = [e.name for e in listed.executions]
    while listed.next_token:
        listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="chaotic", limit=100, next_token=listed.next_token)).body
        names += [e.name for e in listed.executions]
    assert len(names) == s["ok"]  # the failed ones created nothing
    dev.cli("openfnf chaos clear --data-dir .openfnf")
    deadline = time.monotonic() + 15
    while True:  # chaos is off again once the probe passes (it went with the same DEL)
        try:
            sdk.list_flows(models.ListFlowsRequest())
            break
        except TeaException:
            assert time.monotonic() < deadline, "chaos stayed on"
            time.sleep(0.05)


def test_same_name_load_starts_one_execution(dev: Dev) -> None:
    sdk = dev.sdk()
    sdk.create_flow(models.CreateFlowRequest(name="samename", definition=FLOW.format(name="samename"), description="t", type="FDL"))
    report = load(dev, flow="samename", rate=50, duration=1, unique_names=False, check=True)
    # while it runs the name answers 200 with that execution; once it has ended, ExecutionAlreadyExists
    assert report["summary"]["codes"].keys() <= {"200", "400 ExecutionAlreadyExists"}, report["summary"]
    assert report["summary"]["codes"].get("200", 0) >= 1
    assert report["finished"]["accepted"] == 1 and report["finished"]["all_finished"]
    listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="samename", limit=100)).body.executions
    assert [e.name for e in listed] == [report["config"]["run_id"]]
