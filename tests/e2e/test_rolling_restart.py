"""Scale-out on one machine: two front doors, three workers and two timers processes on one Redis
run 2,000 executions while every process is restarted one by one with SIGTERM (a rolling restart)
and one worker is SIGKILLed. Every execution must succeed exactly once, with the right output.

FLOW mixes what a real flow does: Pass, a function Task (FC:InvokeFunction on `add`, bound in
FUNCTIONS), a Wait, a Parallel and a Choice.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from openfnf.redisserver import free_port, start_redis
from tests.conftest import Service, new_sdk_client

pytestmark = pytest.mark.e2e

N = 2000
FLOW_NAME = "rolling"
FLOW = """Type: StateMachine
SpecVersion: v1
Name: rolling
StartAt: Prepare
States:
  - Type: Pass
    Name: Prepare
    OutputConstructor:
      sum.$: $Input.i + 1000
    Next: Add
  - Type: Task
    Name: Add
    Action: FC:InvokeFunction
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123:functions/add/LATEST
      body:
        a.$: $Input.sum
        b: 0
    OutputConstructor:
      sum.$: $Output.Body.sum
    Next: Pause
  - Type: Wait
    Name: Pause
    Seconds: 1
    Next: Both
  - Type: Parallel
    Name: Both
    Branches:
      - StartAt: Double
        States:
          - Type: Pass
            Name: Double
            OutputConstructor:
              v.$: $Input.sum * 2
            End: true
      - StartAt: Same
        States:
          - Type: Pass
            Name: Same
            OutputConstructor:
              v.$: $Input.sum
            End: true
    Next: Route
  - Type: Choice
    Name: Route
    Branches:
      - Condition: $Input.Branch0.v == $Input.Branch1.v * 2
        Next: Done
    Default: Wrong
  - Type: Pass
    Name: Done
    OutputConstructor:
      sum.$: $Input.Branch1.v
      doubled.$: $Input.Branch0.v
    End: true
  - Type: Fail
    Name: Wrong
    Code: Mismatch
    Detail: the branches disagree
"""
# For the Task state FLOW will call: tests/handlers.py `add` returns {"sum": a + b}.
FUNCTIONS = 'functions:\n  - arn: "acs:fc:*:*:functions/add/*"\n    python: "tests.handlers:add"\n'

# The clients keep at most this many drives waiting in the queue (closed-loop load): a message
# waiting longer than wake_after_ms is re-driven by the safety net, and on a slow (shared) box an
# unbounded backlog turns into a storm of duplicate drives that only slows everything down.
MAX_BACKLOG = 200
WAKE_AFTER_MS = 5000  # the production default (the test fixtures' 1 s suits single executions, not a backlog)
RESTARTS = ["api0", "worker0", "timers0", "api1", "worker1", "timers1", "worker2"]  # then a SIGKILL
POLL = 5  # seconds of WaitTimeSeconds: below the SDK's 10 s read timeout


def expected_output(i: int) -> dict[str, Any]:
    """What execution i must end with."""
    return {"sum": i + 1000, "doubled": 2 * (i + 1000)}


def args_of(name: str, ports: dict[str, int]) -> list[str]:
    """The command line of process `name` (the same again after each restart)."""
    if name.startswith("api"):
        return ["api", "--port", str(ports[name])]
    if name.startswith("worker"):
        return ["worker", "--hostname", f"{name}@%h"]
    return ["timers"]


class Cluster:
    """The processes of one OpenFnF installation, restartable by name."""

    def __init__(self, svc: Service, ports: dict[str, int]) -> None:
        self.svc = svc
        self.ports = ports
        self.exit_codes: dict[str, list[int]] = {}

    def start(self, name: str) -> None:
        env = {"OPENFNF_HEARTBEAT_FILE": str(self.svc.workdir / f"{name}.alive")}
        self.svc.start(name, *args_of(name, self.ports), env=env)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process with `sig`, wait for it, start its replacement."""
        self.note(f"stopping {name} with {signal.Signals(sig).name}")
        self.exit_codes.setdefault(name, []).append(self.svc.stop(name, sig, timeout=60))
        self.start(name)
        self.note(f"{name} replaced")

    def note(self, what: str) -> None:
        """A line in progress.log of the work dir (read it when this test fails)."""
        with open(self.svc.workdir / "progress.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {what}\n")


class Starter:
    """Starts executions through both front doors, moving to the other one when a front door is down."""

    def __init__(self, svc: Service, ports: list[int], broker: redis.Redis) -> None:
        self.svc = svc
        self.ports = ports
        self.broker = broker
        self.local = threading.local()
        self.started = 0
        self.failovers = 0
        self.lock = threading.Lock()

    def client(self, port: int) -> Any:
        clients = getattr(self.local, "clients", None)
        if clients is None:
            clients = self.local.clients = {}
        if port not in clients:
            clients[port] = new_sdk_client(f"127.0.0.1:{port}", self.svc.key_id, self.svc.secret)
        return clients[port]

    def call(self, first: int, fn: Callable[[Any], Any], timeout: float = 90) -> Any:
        """fn(client) on front door `first`, else the other; connection failures retried until `timeout`."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            port = self.ports[(first + attempt) % len(self.ports)]
            try:
                return fn(self.client(port))
            except TeaException as exc:
                if exc.code:  # the server answered: not a failover case
                    raise
                err: Exception = exc
            except Exception as exc:  # noqa: BLE001 - connection refused/reset while a front door restarts
                err = exc
            attempt += 1
            with self.lock:
                self.failovers += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"no front door answered for {timeout} s: {err}")
            time.sleep(0.05)

    def start(self, i: int) -> None:
        deadline = time.monotonic() + 120
        while self.broker.llen("openfnf.drives") > MAX_BACKLOG:
            assert time.monotonic() < deadline, "the workers stopped taking drives"
            time.sleep(0.01)
        request = models.StartExecutionRequest(flow_name=FLOW_NAME, execution_name=f"x{i}", input=json.dumps({"i": i}))
        try:
            self.call(i, lambda c: c.start_execution(request))
        except TeaException as exc:
            # a retry of a start whose answer was lost: the first attempt already started (and finished) it
            if exc.code != "ExecutionAlreadyExists":
                raise
        with self.lock:
            self.started += 1


def stuck(r: redis.Redis, name: str) -> str:
    """What Redis holds for an unfinished execution (for the failure message)."""
    from common import keys

    for key in r.scan_iter(f"fnf:x:*/{name}}}"):
        tag = key.decode()[len("fnf:x:{") : -1]
        return (
            f"record={ {k.decode(): v.decode()[:60] for k, v in r.hgetall(key).items() if k != b'state'} } "
            f"inbox={r.lrange(keys.inbox(tag), 0, -1)} lease={r.get(keys.lease(tag))} "
            f"pttl={r.pttl(keys.lease(tag))} wake={r.zscore(keys.wake_for(tag, 16), tag)} now={int(time.time() * 1000)}"
        )
    return "no record"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("rolling")
    server = start_redis(tmp / "redis")
    (tmp / "functions.yaml").write_text(FUNCTIONS, encoding="utf-8")
    svc = Service(
        workdir=tmp,
        redis=server,
        redis_url=server.url,
        port=free_port(),
        env_extra={
            "OPENFNF_FUNCTIONS": str(tmp / "functions.yaml"),
            "OPENFNF_SHUTDOWN_TIMEOUT_SECONDS": "10",
            "OPENFNF_WAKE_AFTER_MS": str(WAKE_AFTER_MS),
        },
    )
    ports = {"api0": svc.port, "api1": free_port()}
    c = Cluster(svc, ports)
    try:
        for name in ("api0", "api1", "worker0", "worker1", "worker2", "timers0", "timers1"):
            c.start(name)
        yield c
    finally:
        svc.stop_all()
        server.stop()


@pytest.mark.timeout(900)  # about a minute on an idle 2-core box; far more when the box is shared
def test_rolling_restart_and_a_killed_worker_lose_and_duplicate_nothing(cluster: Cluster) -> None:
    svc = cluster.svc
    assert svc.redis is not None
    r = redis.Redis.from_url(svc.redis.url)
    starter = Starter(svc, [cluster.ports["api0"], cluster.ports["api1"]], r)
    starter.call(0, lambda c: c.create_flow(models.CreateFlowRequest(name=FLOW_NAME, definition=FLOW, description="", type="FDL")))

    # The starts go in chunks, one per disruption, so every restart happens under load.
    steps: list[tuple[str, int]] = [(name, signal.SIGTERM) for name in RESTARTS] + [("worker0", signal.SIGKILL)]
    chunk = N // (len(steps) + 1)
    bounds = [(k * chunk, N if k == len(steps) else (k + 1) * chunk) for k in range(len(steps) + 1)]
    with ThreadPoolExecutor(4) as pool:
        for k, (lo, hi) in enumerate(bounds):
            pending = [pool.submit(starter.start, i) for i in range(lo, hi)]
            if k < len(steps):
                target = lo + (hi - lo) // 2
                deadline = time.monotonic() + 120
                while starter.started < target:  # half the chunk in: disrupt now
                    assert time.monotonic() < deadline, "the starts stalled"
                    time.sleep(0.01)
                name, sig = steps[k]
                cluster.restart(name, sig)
            for f in pending:
                f.result()
    assert starter.started == N
    cluster.note(f"{N} started, {starter.failovers} failovers")

    # Graceful stops are clean: every SIGTERMed process exited 0.
    for name in RESTARTS:
        assert cluster.exit_codes[name][0] == 0, f"{name} exited {cluster.exit_codes[name][0]} on SIGTERM"
    assert cluster.exit_codes["worker0"][-1] == -signal.SIGKILL

    # Every execution: succeeded, once, with its own output and one identical history shape.
    deadline = time.monotonic() + 180  # for all of them together

    def verify(i: int) -> tuple[str, ...]:
        name = f"x{i}"
        while True:
            events = starter.call(i, lambda c: c.get_execution_history(models.GetExecutionHistoryRequest(flow_name=FLOW_NAME, execution_name=name, limit=1000))).body.events
            if events and events[-1].type in ("ExecutionSucceeded", "ExecutionFailed"):
                break
            assert time.monotonic() < deadline, f"{name} did not finish: {[e.type for e in events][-5:]}; {stuck(r, name)}"
            starter.call(i, lambda c: c.describe_execution(models.DescribeExecutionRequest(flow_name=FLOW_NAME, execution_name=name, wait_time_seconds=POLL)))
        types = [e.type for e in events]
        assert types.count("ExecutionStarted") == 1 and types[0] == "ExecutionStarted", f"{name}: {types}"
        assert types.count("ExecutionSucceeded") == 1 and types[-1] == "ExecutionSucceeded", f"{name}: {types}"
        assert [e.event_id for e in events] == list(range(1, len(events) + 1)), f"{name}: event ids"
        assert json.loads(events[0].event_detail) == {"input": {"i": i}}
        assert json.loads(events[-1].event_detail) == {"output": expected_output(i)}, name
        return tuple(f"{e.type}:{e.step_name}" for e in events)

    with ThreadPoolExecutor(4) as pool:
        shapes = set(pool.map(verify, range(N)))
    cluster.note("all verified")
    assert len(shapes) == 1, "some execution ran a step twice or skipped one"

    # Exactly N executions exist, and nothing is left behind in Redis.
    listed, token = 0, None
    while True:
        page = starter.call(0, lambda c, token=token: c.list_executions(models.ListExecutionsRequest(flow_name=FLOW_NAME, limit=100, next_token=token))).body
        listed += len(page.executions)
        assert all(e.status == "Succeeded" for e in page.executions)
        token = page.next_token
        if not token:
            break
    assert listed == N
    deadline = time.monotonic() + 60
    while list(r.scan_iter("fnf:l:*", count=1000)) or r.llen("openfnf.drives"):
        assert time.monotonic() < deadline, "a lease or a drive message stayed behind"
        time.sleep(0.1)
    assert not [k for k in r.scan_iter("fnf:i:*", count=1000) if r.llen(k)], "an inbox kept events"
