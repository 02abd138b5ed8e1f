"""Throttling through the official SDK, across two front doors, configured live with `openfnf throttle`/`chaos`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from alibabacloud_tea_openapi.exceptions import ThrottlingException
from click.testing import CliRunner, Result
from Tea.exceptions import TeaException

from common import keys
from common.throttle_rules import Rule, Scope, encode
from openfnf.cli import main
from openfnf.redisserver import free_port, start_redis
from tests.conftest import ROOT, Service, new_sdk_client

pytestmark = pytest.mark.e2e

ACCOUNT = "1234567890"  # the service's single key belongs to the default account
FLOW = "Type: StateMachine\nSpecVersion: v1\nName: {name}\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def openfnf(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `openfnf` command line as a user would (in its own process)."""
    return subprocess.run([sys.executable, "-m", "openfnf", *args], capture_output=True, text=True, cwd=ROOT, check=check, timeout=120)


def cli(*args: str, check: bool = True) -> Result:
    """Run an `openfnf throttle`/`chaos` command in this process (the same code, without a new interpreter)."""
    result = CliRunner().invoke(main, list(args))
    if check:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def until(what: Callable[[], Any], timeout: float = 15, every: float = 0.05) -> Any:
    """Call `what` until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def outcome(fn: Callable[[], Any]) -> str:
    """'ok', or the error code the SDK raised ('ResourceThrottled' only via ThrottlingException)."""
    try:
        fn()
        return "ok"
    except ThrottlingException as exc:
        return f"throttled:{exc.code}"
    except TeaException as exc:
        return str(exc.code)


def create_flow(sdk: Any, name: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=FLOW.format(name=name), description="t", type="FDL"))


@pytest.fixture(scope="module")
def rdb(service: Service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(service.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def second_door(service: Service) -> Iterator[str]:
    """A second `openfnf api` on the same Redis: its endpoint."""
    port = free_port()
    service.start("api2", "api", "--port", str(port))
    yield f"127.0.0.1:{port}"
    service.stop("api2")


@pytest.fixture(autouse=True)
def no_rules_left(rdb: redis.Redis) -> Iterator[None]:
    """Each test leaves no rule and no bucket behind (tests also use their own flows and actions)."""
    yield
    rdb.delete(keys.THROTTLE_RULES, keys.CHAOS_RULES)
    for key in rdb.scan_iter(match=keys.PREFIX + "g:*"):
        rdb.delete(key)


def activate(rdb: redis.Redis, endpoints: list[str], service: Service, *rules: Rule) -> None:
    """Store rules and wait until every front door applies them.

    They are written in one HSET together with a probe rule (DescribeFlow of a flow of its own,
    burst 1); the front doors read the hash whole, so once a probe is throttled the rules are live.
    """
    probe_flow = f"probe{time.monotonic_ns()}"
    probe = Rule(action="DescribeFlow", rate=0.001, burst=1, scope=Scope.FLOW, target=probe_flow)
    rdb.hset(keys.THROTTLE_RULES, mapping={r.id: encode(r) for r in (*rules, probe)})
    for endpoint in endpoints:
        sdk = new_sdk_client(endpoint, service.key_id, service.secret)
        until(lambda sdk=sdk: outcome(lambda: sdk.describe_flow(models.DescribeFlowRequest(name=probe_flow))) == "throttled:ResourceThrottled")


def test_throttled_start_execution_raises_throttling_exception_and_claims_nothing(service: Service, sdk: Any) -> None:
    create_flow(sdk, "thr_flow")
    done = cli("throttle", "set", "--action", "StartExecution", "--rate", "1", "--burst", "2",
                   "--scope", "flow", "--target", "thr_flow", "--redis-url", service.redis_url)  # fmt: skip
    assert "set flow/StartExecution/thr_flow: 1/s, burst 2" in done.stdout
    started: list[str] = []

    def start_next() -> ThrottlingException | None:
        name = f"e{len(started)}"
        try:
            sdk.start_execution(models.StartExecutionRequest(flow_name="thr_flow", execution_name=name))
        except ThrottlingException as exc:
            return exc
        started.append(name)
        return None

    exc = until(start_next, timeout=20, every=0)  # the front door picks the rule up within a second
    assert exc.status_code == 429 and exc.code == "ResourceThrottled"
    assert "The request is throttled. Please try again later." in exc.message
    assert 0 < exc.retry_after <= 1000  # milliseconds: at 1/s the next token is at most a second away
    refused = f"e{len(started)}"
    # The refused request claimed nothing: no such execution, and only the admitted ones are listed.
    with pytest.raises(TeaException) as missing:
        sdk.describe_execution(models.DescribeExecutionRequest(flow_name="thr_flow", execution_name=refused))
    assert missing.value.code == "ExecutionNotExists"
    listed: list[str] = []  # every page: a fast front door starts more than a page before it reads the rule
    token = None
    while True:
        page = sdk.list_executions(models.ListExecutionsRequest(flow_name="thr_flow", limit=100, next_token=token)).body
        listed += [e.name for e in page.executions]
        token = page.next_token
        if not token:
            break
    assert sorted(listed) == sorted(started)
    # Waiting as told is enough, and the name is still free.
    time.sleep(exc.retry_after / 1000)
    again = sdk.start_execution(models.StartExecutionRequest(flow_name="thr_flow", execution_name=refused)).body
    assert again.name == refused
    # Other flows are not under this flow-scoped rule.
    create_flow(sdk, "thr_free")
    for i in range(5):
        sdk.start_execution(models.StartExecutionRequest(flow_name="thr_free", execution_name=f"f{i}"))


def test_rules_change_live_on_every_front_door(service: Service, second_door: str) -> None:
    doors = {"first": new_sdk_client(service.endpoint, service.key_id, service.secret),
             "second": new_sdk_client(second_door, service.key_id, service.secret)}  # fmt: skip
    create_flow(doors["first"], "live_flow")

    def describe(sdk: Any) -> str:
        return outcome(lambda: sdk.describe_flow(models.DescribeFlowRequest(name="live_flow")))

    for sdk in doors.values():
        assert [describe(sdk) for _ in range(5)] == ["ok"] * 5  # no rule yet
    cli("throttle", "set", "--action", "DescribeFlow", "--rate", "0.01", "--burst", "3",
            "--scope", "flow", "--target", "live_flow", "--redis-url", service.redis_url)  # fmt: skip
    set_at = time.monotonic()
    for sdk in doors.values():  # every front door starts throttling, without a restart
        until(lambda sdk=sdk: describe(sdk) == "throttled:ResourceThrottled")
    picked_up = time.monotonic() - set_at
    shown = cli("throttle", "show", "--redis-url", service.redis_url).stdout
    assert re.search(r"^flow +DescribeFlow +live_flow +0\.01 +3$", shown, re.M), shown
    assert "chaos: off" in shown
    as_json = json.loads(cli("throttle", "show", "--json", "--redis-url", service.redis_url).stdout)
    assert as_json == {"rules": [{"action": "DescribeFlow", "rate": 0.01, "burst": 3, "scope": "flow", "target": "live_flow"}], "chaos": []}
    cleared = cli("throttle", "clear", "--action", "DescribeFlow", "--redis-url", service.redis_url).stdout
    assert "cleared 1 rule" in cleared
    for sdk in doors.values():  # and stops again
        until(lambda sdk=sdk: describe(sdk) == "ok")
    print(f"rule picked up by both front doors {picked_up:.2f} s after `throttle set`")


def test_one_bucket_is_shared_by_two_front_doors(rdb: redis.Redis, service: Service, second_door: str) -> None:
    doors = [service.endpoint, second_door]
    first = new_sdk_client(doors[0], service.key_id, service.secret)
    create_flow(first, "shared_flow")
    rule = Rule(action="DescribeFlow", rate=0.001, burst=6, scope=Scope.FLOW, target="shared_flow")
    activate(rdb, doors, service, rule)
    clients = [new_sdk_client(d, service.key_id, service.secret) for d in doors]
    got = [outcome(lambda c=c: c.describe_flow(models.DescribeFlowRequest(name="shared_flow"))) for _ in range(5) for c in clients]
    assert got.count("ok") == 6 and got.count("throttled:ResourceThrottled") == 4  # 6 in all, not 6 per door


def test_chaos_answers_documented_errors_and_is_visible(service: Service, sdk: Any) -> None:
    out = cli("chaos", "set", "--action", "ListFlows", "--error", "InternalServerError", "--rate", "1",
                  "--redis-url", service.redis_url).stdout  # fmt: skip
    assert "chaos on: 1 of ListFlows requests answer InternalServerError" in out
    until(lambda: outcome(lambda: sdk.list_flows(models.ListFlowsRequest())) == "InternalServerError")
    with pytest.raises(TeaException) as err:
        sdk.list_flows(models.ListFlowsRequest())
    assert err.value.status_code == 500 and "An internal error has occurred. Please retry." in err.value.message
    shown = cli("throttle", "show", "--redis-url", service.redis_url).stdout
    assert re.search(r"^ListFlows +InternalServerError +1$", shown, re.M), shown
    cli("chaos", "set", "--action", "ListFlows", "--error", "ResourceThrottled", "--rate", "1", "--redis-url", service.redis_url)
    until(lambda: outcome(lambda: sdk.list_flows(models.ListFlowsRequest())) == "throttled:ResourceThrottled")
    refused = cli("chaos", "set", "--action", "ListFlows", "--error", "NoSuchCode", "--rate", "1",
                      "--redis-url", service.redis_url, check=False)  # fmt: skip
    assert refused.exit_code == 2 and "NoSuchCode" in refused.output
    assert "chaos off" in cli("chaos", "clear", "--redis-url", service.redis_url).stdout
    until(lambda: outcome(lambda: sdk.list_flows(models.ListFlowsRequest())) == "ok")
    assert "chaos: off" in cli("chaos", "show", "--redis-url", service.redis_url).stdout


def test_a_front_door_seeds_its_rules_file_at_start(tmp_path: Path, service: Service) -> None:
    own = start_redis(tmp_path / "redis", aof=False)  # its own Redis: the cloud profile must not reach the other tests
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {action: GetExecutionHistory, rate: 4, burst: 8, scope: access_key}\n"
        "chaos:\n  - {action: UpdateFlow, error: ConcurrentUpdateError, rate: 0.5}\n"
    )
    port = free_port()
    env = {"OPENFNF_REDIS_URL": own.url}
    service.start("api3", "api", "--port", str(port), "--throttle", str(rules), "--throttle-profile", "cloud", env=env)
    try:
        stored = json.loads(cli("throttle", "show", "--json", "--redis-url", own.url).stdout)
    finally:
        service.stop("api3")
        own.stop()
    got = {(r["scope"], r["action"], r["target"]): (r["rate"], r["burst"]) for r in stored["rules"]}
    assert got == {
        ("account", "StartExecution", "*"): (100, 100),
        ("account", "DescribeExecution", "*"): (5, 50),
        ("account", "GetExecutionHistory", "*"): (5, 50),
        ("account", "*", "*"): (2, 10),
        ("access_key", "GetExecutionHistory", "*"): (4, 8),
    }
    assert stored["chaos"] == [{"action": "UpdateFlow", "error": "ConcurrentUpdateError", "rate": 0.5}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{action: X, rate: -1, burst: 1}]\n")
    refused = openfnf("api", "--port", str(free_port()), "--throttle", str(bad), check=False)
    assert refused.returncode == 2 and "bad.yaml" in refused.stderr


def test_the_sdk_waits_the_advertised_time_and_retries(rdb: redis.Redis, service: Service, sdk: Any) -> None:
    """With the SDK's own retries on (as the README shows), a throttled call is retried after retry_after."""
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config
    from darabonba.policy.retry import RetryOptions

    create_flow(sdk, "retry_flow")
    activate(rdb, [service.endpoint], service, Rule(action="StartExecution", rate=2, burst=1, scope=Scope.FLOW, target="retry_flow"))
    config = Config(access_key_id=service.key_id, access_key_secret=service.secret, endpoint=service.endpoint, protocol="http", region_id="cn-hangzhou")
    config.retry_options = RetryOptions({"retryable": True, "retryCondition": [{"errorCode": ["ResourceThrottled"], "maxAttempts": 5}]})
    patient = Client(config)
    # One every 500 ms: back-to-back calls only pass because the SDK waits retry_after and retries.
    names = [patient.start_execution(models.StartExecutionRequest(flow_name="retry_flow", execution_name=f"r{i}")).body.name for i in range(3)]
    assert names == ["r0", "r1", "r2"]


def test_throttle_accuracy_across_two_front_doors(rdb: redis.Redis, service: Service, second_door: str, sdk: Any, tmp_path: Path) -> None:
    """Rule R/s burst B, offered 4R over 10 s through two front doors: accepted = B + R x seconds."""
    # B/R = 2 s: a stall of the shared test machine shorter than that loses no admissions (the bucket
    # does not overflow), so the count stays B + R x seconds however busy the machine is.
    rate, burst, offered, seconds = 20, 40, 80, 10
    create_flow(sdk, "acc_flow")
    activate(rdb, [service.endpoint, second_door], service,
             Rule(action="StartExecution", rate=rate, burst=burst, scope=Scope.FLOW, target="acc_flow"))  # fmt: skip
    run = openfnf("loadtest", "--endpoint", f"http://{service.endpoint}", "--endpoint", f"http://{second_door}",
                  "--access-key-id", service.key_id, "--access-key-secret", service.secret, "--flow", "acc_flow",
                  "--rate", str(offered), "--duration", f"{seconds}s", "--quiet", "--report", str(tmp_path))  # fmt: skip
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert summary["requests"] == offered * seconds
    assert summary["ok"] + summary["throttled"] == summary["requests"], run.stdout  # nothing but 200 and 429
    expected = burst + rate * summary["send_span_s"]
    print(f"accuracy: accepted {summary['ok']}, B + R x {summary['send_span_s']:.3f} s = {expected:.1f}, "
          f"off by {100 * (summary['ok'] - expected) / expected:+.2f}%")  # fmt: skip
    assert abs(summary["ok"] - expected) <= 0.1 * expected  # generous; bench/throttle_accuracy.py reports the exact figure
    created, token = 0, None
    while True:  # exactly the accepted requests created executions
        page = sdk.list_executions(models.ListExecutionsRequest(flow_name="acc_flow", limit=100, next_token=token)).body
        created += len(page.executions or [])
        token = page.next_token
        if not token:
            break
    assert created == summary["ok"]
