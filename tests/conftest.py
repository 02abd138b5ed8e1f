"""Fixtures on real parts: a redis-server started here (never the shared 6379), real processes, official SDKs.

Set OPENFNF_TEST_REDIS_URL to run the Redis-backed tests against another server (it is flushed), or
OPENFNF_TEST_REDIS_BINARY to start another redis-server binary (a Redis 7 for compatibility runs).
If no redis-server can be started, the tests that need one fail; they are never skipped.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from openfnf.redisserver import RedisServer, free_port, start_redis, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real redis-server for this test session."""
    external = os.environ.get("OPENFNF_TEST_REDIS_URL")
    if external:
        yield external
        return
    # OPENFNF_TEST_REDIS_BINARY: another redis-server to start (.ci/run uses the machine's Redis 7).
    server = start_redis(tmp_path_factory.mktemp("redis"), aof=False, binary=os.environ.get("OPENFNF_TEST_REDIS_BINARY"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def r(redis_server: str) -> Iterator[redis.Redis]:
    """A sync client on an empty database."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield client
    client.close()


@dataclass
class Service:
    """OpenFnF started as separate processes (`openfnf api`, `worker`, `timers`) on its own redis-server."""

    workdir: Path
    redis: RedisServer | None
    redis_url: str
    port: int
    key_id: str = "LTAItestkey0000001"
    secret: str = "test-secret-0123456789abcdef"
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        """host:port as the SDK Config wants it."""
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment every process of this service runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
        env.update(
            OPENFNF_REDIS_URL=self.redis_url,
            OPENFNF_ACCESS_KEY_ID=self.key_id,
            OPENFNF_ACCESS_KEY_SECRET=self.secret,
            OPENFNF_PORT=str(self.port),
            OPENFNF_WAKE_AFTER_MS="1000",
            OPENFNF_LEASE_MS="3000",
            # The suite's Pass flows stand in for any flow: they test the workers' drive path (crashes, hand-offs,
            # shutdowns), so the start does not run them itself here. tests/e2e/test_pure_at_start.py runs with
            # the default (common/purestart.py), as do the bench and `openfnf dev`.
            OPENFNF_PURE_AT_START_EVENTS="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env_extra)
        return env

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `openfnf <args>` as process `name` (logs in workdir/<name>.log)."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "openfnf", *args], env={**self.env(), **(env or {})}, stdout=log, stderr=log, cwd=ROOT
        )
        self.procs[name] = proc
        if args and args[0] == "api":
            port = int(dict(zip(args[1::2], args[2::2], strict=False)).get("--port", self.port))
            wait_for_port(port, proc)
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal one process and wait for it."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return int(proc.returncode)

    def stop_all(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL)."""
        for name in list(self.procs):
            self.stop(name)

    def close(self) -> None:
        """Stop every process, then its redis-server."""
        self.stop_all()
        if self.redis is not None:
            self.redis.stop()

    def log(self, name: str) -> str:
        """What process `name` wrote."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> Any:
        """An `alibabacloud_fnf20190315` client on this service."""
        return new_sdk_client(self.endpoint, self.key_id, self.secret)

    def old_client(self) -> Any:
        """An `aliyun-python-sdk-fnf` (aliyunsdkcore) client on this service."""
        from aliyunsdkcore.client import AcsClient

        return AcsClient(self.key_id, self.secret, "cn-hangzhou")


def new_sdk_client(endpoint: str, key_id: str, secret: str) -> Any:
    """The new official SDK's client, over plain HTTP to endpoint."""
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    # read_timeout above the longest long-poll (WaitTimeSeconds <= 60); the SDK default is 10 s.
    return Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http", region_id="cn-hangzhou", read_timeout=70000))


def make_service(tmp: Path, workers: int = 1, timers: int = 1, **env: str) -> Service:
    """A started Service: own redis-server, one front door, `workers` workers, `timers` timers."""
    server = start_redis(tmp / "redis")
    svc = Service(workdir=tmp, redis=server, redis_url=server.url, port=free_port(), env_extra=dict(env))
    try:
        svc.start("api", "api")
        for i in range(workers):
            svc.start(f"worker{i}", "worker", "--hostname", f"w{i}@%h")
        for i in range(timers):
            svc.start(f"timers{i}", "timers")
    except Exception:
        svc.stop_all()
        server.stop()
        raise
    return svc


@contextlib.contextmanager
def running_service(tmp: Path, workers: int = 1, timers: int = 1, **env: str) -> Iterator[Service]:
    """make_service(...) for the length of a `with` block, closed afterwards."""
    svc = make_service(tmp, workers=workers, timers=timers, **env)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """OpenFnF as separate processes for a test module."""
    with running_service(tmp_path_factory.mktemp("svc")) as svc:
        yield svc


@pytest.fixture(scope="module")
def sdk(service: Service) -> Any:
    """`alibabacloud_fnf20190315` client of the module's service."""
    return service.client()


@pytest.fixture(scope="module")
def old_sdk(service: Service) -> Any:
    """`aliyun-python-sdk-fnf` client of the module's service."""
    return service.old_client()
