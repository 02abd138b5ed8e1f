"""The processes a benchmark runs against, each started here and stopped afterwards.

OpenFnF as separate processes (`openfnf api`, `worker`, `timers`) on its own redis-server (AOF on,
as `openfnf dev` runs it); the peer (moto's server); the bare aiohttp no-op; a bare Celery worker.
Every process gets its own session and log file in the run's work dir.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from common import keys
from openfnf.loadtest import sign
from openfnf.rediscluster import Cluster, start_cluster
from openfnf.redisserver import RedisServer, free_port, start_redis, wait_for_port, wait_for_ports

ROOT = Path(__file__).resolve().parent.parent
KEY_ID, SECRET, ACCOUNT = "LTAIbenchkey000001", "bench-secret-0123456789abcdef", "1234567890"
TRACING_ENV: dict[str, str] = {}  # `--tracing`: the OTEL_* variables every OpenFnF process gets (bench/otlpsink.py)


@dataclass
class Processes:
    """Child processes of one benchmark part, stopped together."""

    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cwd: Path = ROOT  # the checkout whose code they run (`python -m` imports from the working directory first)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start argv as `name`, output to workdir/name.log."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=self.cwd, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def pid(self, name: str) -> int:
        """Process id of `name`."""
        return self.procs[name].pid

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after timeout."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        """Stop every process, newest first."""
        for name in reversed(list(self.procs)):
            self.stop(name)


def base_env() -> dict[str, str]:
    """The environment without any OPENFNF_ setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class OpenFnF:
    """OpenFnF as separate processes on its own redis-server."""

    def __init__(
        self, workdir: Path, workers: int = 2, timers: bool = True, pool: str = "solo", env: dict[str, str] | None = None,
        api_processes: int = 1, cluster: int = 0, broker: bool = False, redis_binary: str | None = None, code: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.redis_binary = redis_binary  # the state's redis-server executable (bench/callgrind.py's wrapper), None: the bundled one
        self.code = code or ROOT  # the checkout the OpenFnF processes run (bench.rediswork --code: an older one)
        self.n_workers = workers
        self.api_processes = api_processes
        self.with_timers = timers
        self.pool = pool
        self.extra_env = env or {}
        self.procs = Processes(workdir, cwd=self.code)
        self.redis: RedisServer | None = None
        self.n_shards = cluster  # > 0: the state on a Redis Cluster of this many primaries (openfnf/rediscluster.py)
        self.separate_broker = broker or cluster > 0  # the Celery broker on a redis-server of its own (kombu cannot use a cluster)
        self.cluster: Cluster | None = None
        self.broker: RedisServer | None = None
        self.port = 0
        self.r: Any = None  # redis.Redis, or redis.cluster.RedisCluster on a cluster

    def env(self) -> dict[str, str]:
        """The environment every OpenFnF process runs with."""
        assert self.redis is not None
        # Traced only with --tracing (the caller's other OTEL_* variables then tune it, e.g. OTEL_BSP_*).
        env = {k: v for k, v in base_env().items() if TRACING_ENV or not k.startswith("OTEL_")}
        if self.code != ROOT:
            env["PYTHONPATH"] = str(self.code) + os.pathsep + env["PYTHONPATH"]
        env.update(TRACING_ENV)
        env.update(
            OPENFNF_REDIS_URL=self.cluster.url if self.cluster is not None else self.redis.url,
            OPENFNF_ACCESS_KEY_ID=KEY_ID,
            OPENFNF_ACCESS_KEY_SECRET=SECRET,
            OPENFNF_ACCOUNT_ID=ACCOUNT,
            OPENFNF_PORT=str(self.port),
            OPENFNF_MAX_RUNNING_EXECUTIONS="0",  # the bench parks 10,000 waiting executions
            OPENFNF_FUNCTIONS=str(ROOT / "bench" / "functions.yaml"),
            OPENFNF_HEARTBEAT_INTERVAL_SECONDS="0.5",  # so the harness sees a worker ready soon
        )
        if self.cluster is not None:
            env["OPENFNF_REDIS_CLUSTER"] = "true"
        if self.broker is not None:
            env["OPENFNF_BROKER_URL"] = self.broker.url
        env.update(self.extra_env)
        return env

    def start(self) -> OpenFnF:
        """redis-server, then the front door, the workers and the timers; returns once all are ready."""
        if self.n_shards:
            self.cluster = start_cluster(self.workdir / "cluster", self.n_shards, appendonly=True)
            self.r = self.cluster.client()
        # A separate broker: both servers on TCP, as a cluster's nodes are (the comparison is then like for like).
        if self.separate_broker:
            self.broker = start_redis(self.workdir / "broker", aof=True, tcp=True)
        # With a cluster, `redis` is the broker's server (the one plain redis-server there is).
        if self.broker is not None and self.cluster is not None:
            self.redis = self.broker
        else:
            self.redis = start_redis(self.workdir / "redis", aof=True, tcp=self.separate_broker, binary=self.redis_binary)
        if self.r is None:
            self.r = redis.Redis.from_url(self.redis.url)
        self.port = free_port()
        api = self.start_api()
        for i in range(self.n_workers):
            self.start_worker(i)
        if self.with_timers:
            self.procs.start("timers", [sys.executable, "-m", "openfnf", "timers"], self._env_for("timers"))
        wait_for_ports(self.port, api)
        self.wait_workers()
        return self

    def _env_for(self, name: str) -> dict[str, str]:
        env = self.env()
        env["OPENFNF_HEARTBEAT_FILE"] = str(self.workdir / f"{name}.alive")
        return env

    def start_api(self) -> list[subprocess.Popen[bytes]]:
        """The front door on self.port: one process, or api_processes sharing the port (SO_REUSEPORT)."""
        env = self.env()
        if self.api_processes > 1:
            env["OPENFNF_REUSE_PORT"] = "1"
        return [self.procs.start("api" if i == 0 else f"api{i}", [sys.executable, "-m", "openfnf", "api"], env) for i in range(self.api_processes)]

    def redis_pids(self) -> dict[str, list[int]]:
        """The redis-server processes by role: `redis` (state and broker on one server), or `state` and
        `broker` (a separate broker), or `shard0`.. and `broker` (a cluster)."""
        if self.cluster is not None:
            assert self.broker is not None
            return {**{f"shard{i}": [n.process.pid] for i, n in enumerate(self.cluster.nodes)}, "broker": [self.broker.process.pid]}
        assert self.redis is not None
        if self.broker is not None:
            return {"state": [self.redis.process.pid], "broker": [self.broker.process.pid]}
        return {"redis": [self.redis.process.pid]}

    def redis_clients(self) -> dict[str, redis.Redis]:
        """A plain client of each redis-server, by the role names of redis_pids()."""
        if self.cluster is not None:
            assert self.broker is not None
            return {**{f"shard{i}": n.client() for i, n in enumerate(self.cluster.nodes)}, "broker": redis.Redis.from_url(self.broker.url)}
        assert self.redis is not None
        if self.broker is not None:
            return {"state": redis.Redis.from_url(self.redis.url), "broker": redis.Redis.from_url(self.broker.url)}
        return {"redis": redis.Redis.from_url(self.redis.url)}

    def api_pids(self) -> list[int]:
        """The front door processes."""
        return [self.procs.pid("api" if i == 0 else f"api{i}") for i in range(self.api_processes)]

    def start_worker(self, i: int) -> None:
        """Worker i (solo pool unless told otherwise)."""
        name = f"worker{i}"
        (self.workdir / f"{name}.alive").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "openfnf", "worker", "--hostname", f"w{i}@bench", "--pool", self.pool]
        self.procs.start(name, argv, self._env_for(name))

    def wait_workers(self, timeout: float = 120.0) -> None:
        """Until every worker's heartbeat says ready (Celery consumes)."""
        deadline = time.monotonic() + timeout
        for i in range(self.n_workers):
            path = self.workdir / f"worker{i}.alive"
            while True:
                proc = self.procs.procs[f"worker{i}"]
                if proc.poll() is not None:
                    raise RuntimeError(f"worker{i} exited with {proc.returncode}; see {self.workdir}/worker{i}.log")
                try:
                    if json.loads(path.read_text()).get("state") == "ready":
                        break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker{i} not ready within {timeout:.0f} s")
                time.sleep(0.1)

    def call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        """One signed API call from the harness (sync, urllib); the JSON answer (raises on an error status)."""
        method, query, body = sign(action, params, KEY_ID, SECRET)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/?{query}", data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=70) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{action} answered {err.code}: {err.read()[:300]!r}") from None

    def create_flow(self, name: str, definition: str) -> str:
        """Create flow `name`; returns its Id (the tag prefix of its executions)."""
        self.call("CreateFlow", {"Name": name, "Definition": definition, "Type": "FDL", "Description": "bench"})
        assert self.r is not None
        flow: dict[bytes, bytes] = self.r.hgetall(keys.flow(ACCOUNT, name))
        return flow[b"Id"].decode()

    def stop(self) -> None:
        """Every process, then redis-server."""
        self.procs.stop_all()
        if self.r is not None:
            self.r.close()
        if self.redis is not None and self.redis is not self.broker:
            self.redis.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.cluster is not None:
            self.cluster.stop()


class Moto:
    """moto's server (Step Functions, executing state machines in threads) on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.procs = Processes(workdir)
        self.port = free_port()

    def start(self) -> Moto:
        """Start and wait until it listens."""
        env = base_env()
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        proc = self.procs.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], env)
        wait_for_port(self.port, proc)
        return self

    @property
    def url(self) -> str:
        """The endpoint boto3 talks to."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every state machine and execution (moto's /moto-api/reset)."""
        req = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()

    def set_execution(self, on: bool) -> None:
        """Turn executing state machines on or off (moto's /moto-api/config)."""
        body = json.dumps({"stepfunctions": {"execute_state_machine": on}}).encode()
        req = urllib.request.Request(self.url + "/moto-api/config", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def client(self, pool: int = 10) -> Any:
        """A boto3 Step Functions client on this server."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "stepfunctions", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(max_pool_connections=pool, retries={"max_attempts": 1}),
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server."""
        self.procs.stop_all()
