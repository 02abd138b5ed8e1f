"""Where the console is served: /console/ on the front door's port, a port of its own, or nowhere."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from openfnf.redisserver import free_port
from tests.conftest import running_service

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_console_is_at_console_on_the_front_doors_port_by_default(tmp_path: Path) -> None:
    with running_service(tmp_path, workers=0, timers=0) as svc:
        status, body = _get(f"http://{svc.endpoint}/console/signin")
        assert status == 200 and 'id="access_key_secret"' in body
        status, body = _get(f"http://{svc.endpoint}/console/static/vendor/dagre.min.js")
        assert status == 200 and len(body) > 100_000  # served locally, no CDN


def test_a_port_of_its_own_takes_the_console_off_the_rpc_port(tmp_path: Path) -> None:
    port = free_port()
    with running_service(tmp_path, workers=0, timers=0, OPENFNF_CONSOLE_PORT=str(port)) as svc:
        from openfnf.redisserver import wait_for_port

        wait_for_port(port)
        status, body = _get(f"http://127.0.0.1:{port}/console/signin")
        assert status == 200 and 'id="access_key_secret"' in body
        status, body = _get(f"http://{svc.endpoint}/console/signin")
        assert status == 404 and json.loads(body)["Code"] == "PathNotFound"


def test_console_off_serves_no_console(tmp_path: Path) -> None:
    with running_service(tmp_path, workers=0, timers=0, OPENFNF_CONSOLE="false") as svc:
        status, body = _get(f"http://{svc.endpoint}/console/signin")
        assert status == 404 and json.loads(body)["Code"] == "PathNotFound"
