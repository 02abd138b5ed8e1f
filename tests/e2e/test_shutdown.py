"""Graceful shutdown with real SIGTERMs: the front door drains (a long poll in flight gets its
answer), a worker stops after its current task and hands the rest back, timers stop at once."""
from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port, start_redis
from tests.conftest import Service, new_sdk_client, wait_for_port

pytestmark = pytest.mark.e2e

PASS_CHAIN = 20  # Pass states per execution: each drive does a little work


def chain_flow(name: str, n: int = PASS_CHAIN) -> str:
    """A new-syntax flow of n Pass states, then Succeed."""
    states = [f"  - Type: Pass\n    Name: P{i}\n    Next: {'P' + str(i + 1) if i + 1 < n else 'Done'}\n" for i in range(n)]
    return f"Type: StateMachine\nSpecVersion: v1\nName: {name}\nStartAt: P0\nStates:\n{''.join(states)}  - Type: Succeed\n    Name: Done\n"


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_flight(port: int) -> float:
    """openfnf_api_requests_in_flight of a front door, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("openfnf_api_requests_in_flight "):
                return float(line.split()[1])
    raise AssertionError("no openfnf_api_requests_in_flight in /metrics")


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An empty service on its own redis-server: each test starts the processes it needs."""
    tmp = tmp_path_factory.mktemp("shutdown")
    server = start_redis(tmp / "redis")
    service = Service(workdir=tmp, redis=server, redis_url=server.url, port=free_port())
    try:
        yield service
    finally:
        service.stop_all()
        server.stop()


def start_api(svc: Service, name: str, drain_seconds: float) -> int:
    port = free_port()
    svc.start(name, "api", "--port", str(port), env={"OPENFNF_SHUTDOWN_TIMEOUT_SECONDS": str(drain_seconds)})
    return port


def long_poll(svc: Service, port: int, flow: str, execution: str, results: list[Any]) -> threading.Thread:
    """DescribeExecution(WaitTimeSeconds=30) on front door `port`, in a thread; its body (or error) lands in results."""
    client = new_sdk_client(f"127.0.0.1:{port}", svc.key_id, svc.secret)

    def run() -> None:
        try:
            req = models.DescribeExecutionRequest(flow_name=flow, execution_name=execution, wait_time_seconds=30)
            results.append(client.describe_execution(req).body)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: in_flight(port) >= 1, what="the long poll to be in flight")
    return thread


def test_front_door_drains_a_long_poll_that_gets_the_real_answer(svc: Service) -> None:
    """SIGTERM while a DescribeExecution long-polls: no new connections, the poll still ends Succeeded."""
    port = start_api(svc, "api-drain", drain_seconds=30)
    client = new_sdk_client(f"127.0.0.1:{port}", svc.key_id, svc.secret)
    client.create_flow(models.CreateFlowRequest(name="drain", definition=chain_flow("drain", 3), description="", type="FDL"))
    started = client.start_execution(models.StartExecutionRequest(flow_name="drain", execution_name="e1")).body
    assert started.status == "Running"  # no worker yet: it stays Running
    results: list[Any] = []
    poller = long_poll(svc, port, "drain", "e1", results)
    api = svc.procs["api-drain"]
    api.send_signal(signal.SIGTERM)
    wait_until(lambda: refuses_connections(port), what="the front door to stop accepting")
    assert api.poll() is None and not results, "the in-flight long poll is still being served"
    svc.start("worker-drain", "worker", "--hostname", "drain@%h")  # now the execution can end
    poller.join(60)
    assert len(results) == 1 and not isinstance(results[0], Exception), results
    assert results[0].status == "Succeeded" and results[0].name == "e1"
    assert api.wait(30) == 0
    svc.stop("worker-drain")
    svc.procs.pop("api-drain", None)


def test_front_door_answers_pending_long_polls_before_the_drain_deadline(svc: Service) -> None:
    """An execution that does not end within the drain: the poll answers Running instead of a reset."""
    port = start_api(svc, "api-deadline", drain_seconds=3)
    client = new_sdk_client(f"127.0.0.1:{port}", svc.key_id, svc.secret)
    client.create_flow(models.CreateFlowRequest(name="never", definition=chain_flow("never", 2), description="", type="FDL"))
    client.start_execution(models.StartExecutionRequest(flow_name="never", execution_name="e1"))
    results: list[Any] = []
    poller = long_poll(svc, port, "never", "e1", results)
    api = svc.procs.pop("api-deadline")
    api.send_signal(signal.SIGTERM)
    poller.join(30)
    assert len(results) == 1 and not isinstance(results[0], Exception), results
    assert results[0].status == "Running" and results[0].name == "e1"
    assert api.wait(30) == 0


def test_worker_warm_shutdown_hands_back_the_queue_and_nothing_is_lost(svc: Service) -> None:
    """SIGTERM a worker in the middle of a backlog: it exits 0 at once, leaves no lease and no unacked
    message behind, the rest of the queue waits for the next worker, and every execution succeeds."""
    assert svc.redis is not None
    r = redis.Redis.from_url(svc.redis.url)
    port = start_api(svc, "api-w", drain_seconds=5)
    client = new_sdk_client(f"127.0.0.1:{port}", svc.key_id, svc.secret)
    client.create_flow(models.CreateFlowRequest(name="backlog", definition=chain_flow("backlog"), description="", type="FDL"))
    n = 600
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: client.start_execution(models.StartExecutionRequest(flow_name="backlog", execution_name=f"b{i}", input=json.dumps({"i": i}))), range(n)))
    queue = "openfnf.drives"

    def queued() -> int:
        """Executions waiting in the drive queue (a message carries up to OPENFNF_DRIVE_BATCH)."""
        return sum(len(json.loads(base64.b64decode(json.loads(m)["body"]))[0]) for m in r.lrange(queue, 0, -1))

    assert queued() >= n  # (and what earlier tests of the module left without a worker)
    heartbeat = svc.workdir / "worker-a.alive"
    worker = svc.start("worker-a", "worker", "--hostname", "a@%h", env={"OPENFNF_HEARTBEAT_FILE": str(heartbeat)})
    wait_until(lambda: queued() < n - 50, what="the worker to take some drives")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    svc.procs.pop("worker-a")
    assert queued() > 0, "the worker stopped consuming instead of draining the whole backlog"
    assert not list(r.scan_iter("fnf:l:*")), "no execution is left under a lease"
    assert r.hlen("unacked") == 0, "a prefetched message was handed back to the queue, not kept unacked"
    assert not heartbeat.exists(), "a clean exit removes the heartbeat, so the liveness check fails at once"
    assert "Warm shutdown" in svc.log("worker-a")
    svc.start("worker-b", "worker", "--hostname", "b@%h")
    wait_until(lambda: r.llen(queue) == 0, what="the next worker to take the rest")
    done = client.describe_execution(models.DescribeExecutionRequest(flow_name="backlog", execution_name=f"b{n - 1}", wait_time_seconds=30)).body
    assert done.status == "Succeeded"
    statuses: dict[str, int] = {}
    token = None
    while True:
        page = client.list_executions(models.ListExecutionsRequest(flow_name="backlog", limit=100, next_token=token)).body
        for e in page.executions:
            if e.status != "Succeeded":  # a drive still finishing: wait for it
                e = client.describe_execution(models.DescribeExecutionRequest(flow_name="backlog", execution_name=e.name, wait_time_seconds=30)).body
            statuses[e.status] = statuses.get(e.status, 0) + 1
        token = page.next_token
        if not token:
            break
    assert statuses == {"Succeeded": n}
    svc.stop("worker-b")
    svc.stop("api-w")


def test_timers_stop_at_once_on_sigterm(svc: Service) -> None:
    heartbeat = svc.workdir / "timers.alive"
    timers = svc.start("timers-s", "timers", env={"OPENFNF_HEARTBEAT_FILE": str(heartbeat)})
    wait_until(heartbeat.exists, what="the timers heartbeat")
    assert svc.stop("timers-s", signal.SIGTERM, timeout=10) == 0
    assert timers.returncode == 0 and not heartbeat.exists()


def test_the_api_port_is_free_again_after_a_drain(svc: Service) -> None:
    """A replacement on the same port can start right after (what a rolling restart on one host needs)."""
    port = start_api(svc, "api-1", drain_seconds=5)
    assert svc.stop("api-1", signal.SIGTERM) == 0
    svc.start("api-2", "api", "--port", str(port))
    wait_for_port(port, svc.procs["api-2"])
    assert svc.stop("api-2") == 0
