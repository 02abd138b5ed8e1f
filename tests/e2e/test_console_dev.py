"""The issue's "done when": `openfnf dev` prints the console's address; signed in with the printed key,
the README example's flow is drawn and its execution's timeline shown (over HTTP; tests/browser
does the same in Chromium)."""
from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port
from tests.e2e.test_dev_command import _client, start_dev, stop_dev

pytestmark = pytest.mark.e2e

HELLO = """Type: StateMachine
SpecVersion: v1
Name: hello
StartAt: Greet
States:
  - Type: Pass
    Name: Greet
    OutputConstructor:
      greeting.$: $Input.greeting
    End: true
"""


def test_dev_prints_the_console_and_the_readme_flow_is_drawn_with_its_timeline(tmp_path: Path) -> None:
    port = free_port()
    proc, info = start_dev(tmp_path / "data", port, tmp_path / "dev.log")
    try:
        console = re.search(r"^\s+console:\s+(\S+)", (tmp_path / "dev.log").read_text(), re.M)
        assert console and console.group(1) == f"http://127.0.0.1:{port}/console/"
        sdk = _client(info)
        sdk.create_flow(models.CreateFlowRequest(name="hello", definition=HELLO, description="demo", type="FDL"))
        started = sdk.start_execution(models.StartExecutionRequest(flow_name="hello", input=json.dumps({"greeting": "Hello, world"})))
        done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="hello", execution_name=started.body.name, wait_time_seconds=30))
        assert done.body.status == "Succeeded"

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(console.group(1), timeout=10).read().decode()  # -> sign in
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        form = urllib.parse.urlencode({"csrf": csrf.group(1), "access_key_id": info["access key id"], "access_key_secret": info["access key secret"]})
        flows = opener.open(console.group(1) + "signin", data=form.encode(), timeout=10).read().decode()
        assert ">hello</a>" in flows
        flow_page = opener.open(console.group(1) + "flows/hello", timeout=10).read().decode()
        graph = json.loads(re.search(r'id="graph-data">(.*?)</script>', flow_page, re.S).group(1))  # type: ignore[union-attr]
        assert [n["label"] for n in graph["nodes"] if n["kind"] == "pass"] == ["Greet"]
        execution = opener.open(f"{console.group(1)}flows/hello/executions/{started.body.name}", timeout=10).read().decode()
        assert 'id="execution-status">Succeeded' in execution
        assert '<svg class="timeline"' in execution and 'data-node="' in execution
        colours = json.loads(re.search(r'id="overlay-data">(.*?)</script>', execution, re.S).group(1))  # type: ignore[union-attr]
        assert "succeeded" in colours.values()
    finally:
        assert stop_dev(proc) == 0
