"""The README's distributed-Map example runs on `openfnf dev --buckets` (issue 16)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from openfnf.redisserver import free_port
from tests.conftest import ROOT
from tests.e2e.test_examples import _wait_ready

pytestmark = pytest.mark.e2e


def test_distributed_map_example_runs_on_dev_buckets(tmp_path: Path) -> None:
    buckets = tmp_path / "buckets"
    shutil.copytree(ROOT / "examples" / "buckets", buckets)
    port = free_port()
    log = open(tmp_path / "dev.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "openfnf", "dev", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--buckets", str(buckets)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        info = _wait_ready(tmp_path / "dev.log", proc)
        env = {**os.environ, "OPENFNF_ACCESS_KEY_ID": info["access key id"], "OPENFNF_ACCESS_KEY_SECRET": info["access key secret"],
               "OPENFNF_ENDPOINT": f"127.0.0.1:{port}"}  # fmt: skip
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "distributed_map.py")], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("Succeeded ") and lines[1] == "items: 100 total, 100 succeeded, 0 failed"
        assert lines[2].startswith("10 child executions")
        run = json.loads(lines[0].split(" ", 1)[1])["MapRunName"]
        results = json.loads((buckets / "reports" / "priced" / run / "SUCCEEDED_0.json").read_text())
        assert len(results) == 10 and json.loads(results[0]["Output"])["count"] == 10
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
