"""Probes on real processes: /healthz and /readyz on the front door, `openfnf worker|timers --check`.

Real signals freeze processes (SIGSTOP) to make them look dead or make Redis unresponsive.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from openfnf.redisserver import free_port, start_redis
from tests.conftest import ROOT, Service
from worker.heartbeat import Verdict, check

pytestmark = pytest.mark.e2e

STALE = 3.0  # seconds: OPENFNF_HEARTBEAT_STALE_SECONDS of this module's processes (2 s flaked at load 5+: a main loop starved of CPU for 2.1-2.4 s is not wedged)


def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of GET path on the front door, without any credentials."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def heartbeat_env(svc: Service, role: str) -> dict[str, str]:
    return {"OPENFNF_HEARTBEAT_FILE": str(svc.workdir / f"{role}.alive")}


def verdict(svc: Service, role: str) -> Verdict:
    """The check's verdict computed here (cheap to poll); run_check runs the real command."""
    settings = Settings(heartbeat_file=svc.workdir / f"{role}.alive", heartbeat_stale_seconds=STALE)
    return check(settings, role)


def alive(svc: Service, role: str) -> bool:
    return verdict(svc, role).alive


def run_check(svc: Service, role: str) -> tuple[int, str]:
    """`openfnf <role> --check` as the orchestrator runs it (same env as the process it checks)."""
    out = subprocess.run(
        [sys.executable, "-m", "openfnf", role, "--check"],
        env={**svc.env(), **heartbeat_env(svc, role)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A front door, a worker and a timers process with fast heartbeats, on their own redis-server."""
    tmp = tmp_path_factory.mktemp("health")
    server = start_redis(tmp / "redis")
    svc = Service(
        workdir=tmp,
        redis=server,
        redis_url=server.url,
        port=free_port(),
        env_extra={"OPENFNF_HEARTBEAT_INTERVAL_SECONDS": "0.2", "OPENFNF_HEARTBEAT_STALE_SECONDS": str(STALE)},
    )
    try:
        svc.start("api", "api")
        svc.start("worker", "worker", env=heartbeat_env(svc, "worker"))
        svc.start("timers", "timers", env=heartbeat_env(svc, "timers"))
        for role in ("worker", "timers"):
            wait_until(lambda role=role: alive(svc, role), what=f"{role} to write its heartbeat")
        yield svc
    finally:
        for proc in svc.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        server.process.send_signal(signal.SIGCONT)
        svc.stop_all()
        server.stop()


def test_healthz_and_readyz_answer_without_credentials(ops: Service) -> None:
    assert http_get(ops.port, "/healthz")[:2] == (200, "ok\n")
    assert http_get(ops.port, "/readyz")[:2] == (200, "ready\n")
    # the same unauthenticated request as an RPC is refused: the probes sit outside the RPC pipeline
    status, body, _ = http_get(ops.port, "/?Action=ListFlows&Version=2019-03-15")
    assert status >= 400 and '"Code"' in body


@pytest.mark.parametrize("role", ["worker", "timers"])
def test_a_frozen_process_fails_its_liveness_check_and_recovers(ops: Service, role: str) -> None:
    proc = ops.procs[role]
    code, out = run_check(ops, role)
    assert code == 0, out
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: not alive(ops, role), what=f"{role} to look dead")
        code, out = run_check(ops, role)
        assert code == 1 and ("old" in out or "main loop" in out), out
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_until(lambda: alive(ops, role), what=f"{role} to look alive again")
    assert run_check(ops, role)[0] == 0


def test_unresponsive_redis_makes_the_front_door_unready_but_nothing_dead(ops: Service) -> None:
    """Redis frozen for longer than the heartbeat staleness limit: /readyz says 503, every liveness check still passes."""
    assert ops.redis is not None
    ops.redis.process.send_signal(signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        status, body, _ = http_get(ops.port, "/readyz")
        assert status == 503 and "redis" in body
        assert http_get(ops.port, "/healthz")[0] == 200
        # for twice the staleness limit, every process keeps looking alive
        while time.monotonic() - frozen_at < 2 * STALE:
            for role in ("worker", "timers"):
                said = verdict(ops, role)
                assert said.alive, f"{role} looked dead with Redis frozen for {time.monotonic() - frozen_at:.1f} s: {said.reason}"
            time.sleep(0.1)
        for role in ("worker", "timers"):
            code, out = run_check(ops, role)
            assert code == 0, f"{role}: {out}"
        assert http_get(ops.port, "/healthz")[0] == 200
    finally:
        ops.redis.process.send_signal(signal.SIGCONT)
    wait_until(lambda: http_get(ops.port, "/readyz")[0] == 200, what="/readyz to recover")
    for role in ("worker", "timers"):
        wait_until(lambda role=role: alive(ops, role), what=f"{role} alive after Redis came back")


def test_check_without_a_running_process_fails(ops: Service, tmp_path: Path) -> None:
    env = {**ops.env(), "OPENFNF_HEARTBEAT_FILE": str(tmp_path / "nobody.alive")}
    out = subprocess.run([sys.executable, "-m", "openfnf", "worker", "--check"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1 and "no heartbeat file" in out.stdout
    assert os.path.exists(ops.workdir / "worker.alive")
