"""A flow of pure states run to its end by StartExecution itself (issue 17, common/purestart.py), through the official
SDK against real processes with no worker: the start answers the ended execution, and nothing is left to drive.
Whatever is not pure, over the budget, or updated meanwhile still goes to the workers, guarded as before."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys, runcount
from common.settings import Settings
from openfnf.extensions import redrive_execution
from tests.conftest import Service, running_service

pytestmark = pytest.mark.e2e

ACCOUNT = "1234567890"
SETTINGS = Settings(_env_file=None)
DEFAULT_BUDGET = str(Settings.model_fields["pure_at_start_events"].default)  # the product's default (tests/conftest.py turns it off)


def pass_flow(states: int) -> str:
    lines = ["Type: StateMachine", "SpecVersion: v1", "StartAt: S0", "States:"]
    for i in range(states):
        lines += ["  - Type: Pass", f"    Name: S{i}", "    OutputConstructor:", f"      n.$: $Input.n + {i}" if i else "      n.$: $Input.n"]
        lines += ["    End: true"] if i == states - 1 else [f"    Next: S{i + 1}"]
    return "\n".join(lines) + "\n"


FAIL = "Type: StateMachine\nSpecVersion: v1\nStartAt: F\nStates:\n  - Type: Fail\n    Name: F\n    Code: Refused\n    Detail: by the flow\n"
WAIT = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 1\n    End: true\n"


@pytest.fixture(scope="module")
def no_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A front door and no worker or timers process: whatever is not done at its start stays Running."""
    with running_service(tmp_path_factory.mktemp("pure"), workers=0, timers=0, OPENFNF_PURE_AT_START_EVENTS=DEFAULT_BUDGET) as svc:
        yield svc


def create(sdk: Any, name: str, definition: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))


def start(sdk: Any, flow: str, name: str, input: str | None = None) -> Any:
    return sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=input)).body


def describe(sdk: Any, flow: str, name: str) -> Any:
    return sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name)).body


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    return sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events


def wakes(rdb: redis.Redis) -> set[bytes]:
    """Every wake-up member of every partition (the safety net's set)."""
    members: set[bytes] = set()
    for p in range(SETTINGS.partitions):
        members.update(rdb.zrange(keys.wake(p, SETTINGS.partitions), 0, -1))
    return members


def flow_id(rdb: redis.Redis, flow: str) -> str:
    return rdb.hget(keys.flow(ACCOUNT, flow), "Id").decode()


def test_a_pure_flow_ends_at_its_start_with_its_whole_history_and_nothing_left_to_drive(no_workers: Service) -> None:
    sdk, rdb = no_workers.client(), redis.Redis.from_url(no_workers.redis_url)
    create(sdk, "pure10", pass_flow(10))
    running, queued = runcount.read_total_sync(rdb, ACCOUNT, SETTINGS.running_shards), rdb.llen(SETTINGS.drive_queue)
    for i in range(3):  # the first start, and the next ones whose admission writes no wake-up (api/admission.py)
        name = f"p{i}"
        answer = start(sdk, "pure10", name, json.dumps({"n": i}))
        assert (answer.status, answer.name, json.loads(answer.output)) == ("Succeeded", name, {"n": i + 45})
        assert answer.stopped_time and answer.stopped_time >= answer.started_time
        seen = describe(sdk, "pure10", name)
        assert (seen.status, seen.output, seen.stopped_time) == ("Succeeded", answer.output, answer.stopped_time)
        events = history(sdk, "pure10", name)
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert events[0].type == "ExecutionStarted" and events[-1].type == "ExecutionSucceeded"
        assert [e.step_name for e in events if e.type == "StepEntered"] == [f"S{k}" for k in range(10)]
    tag = keys.execution_tag(flow_id(rdb, "pure10"), "p2")
    fid = flow_id(rdb, "pure10").encode()
    assert not [m for m in wakes(rdb) if fid in m or b'"pure10"' in m]  # no wake-up guards them: nothing is left to drive
    assert rdb.llen(SETTINGS.drive_queue) == queued  # and no worker was told
    assert runcount.read_total_sync(rdb, ACCOUNT, SETTINGS.running_shards) == running  # never counted as running
    assert 0 < rdb.ttl(keys.execution(tag)) <= SETTINGS.retention_seconds  # kept for the retention period, as any end
    listed = sdk.list_executions(models.ListExecutionsRequest(flow_name="pure10")).body.executions
    assert [(e.name, e.status) for e in listed] == [(f"p{i}", "Succeeded") for i in range(3)]
    with pytest.raises(TeaException) as again:  # the name is taken, as by any ended execution
        start(sdk, "pure10", "p1")
    assert (again.value.code, again.value.statusCode) == ("ExecutionAlreadyExists", 400)


def test_a_failing_pure_flow_ends_failed_at_its_start(no_workers: Service) -> None:
    sdk = no_workers.client()
    create(sdk, "pure_fail", FAIL)
    answer = start(sdk, "pure_fail", "f1")
    assert answer.status == "Failed"
    seen = describe(sdk, "pure_fail", "f1")
    assert seen.status == "Failed"
    assert [e.type for e in history(sdk, "pure_fail", "f1")][-1] == "ExecutionFailed"


def test_what_is_not_pure_goes_to_the_workers_guarded_by_its_wake_up(no_workers: Service) -> None:
    sdk, rdb = no_workers.client(), redis.Redis.from_url(no_workers.redis_url)
    create(sdk, "waits", WAIT)
    running = runcount.read_total_sync(rdb, ACCOUNT, SETTINGS.running_shards)
    assert start(sdk, "waits", "w1").status == "Running"
    pending = keys.pending_start(ACCOUNT, "waits", "w1").encode()
    assert pending in wakes(rdb)
    assert runcount.read_total_sync(rdb, ACCOUNT, SETTINGS.running_shards) == running + 1
    assert describe(sdk, "waits", "w1").status == "Running"


def test_a_pure_flow_updated_to_one_that_is_not_still_gets_its_wake_up(no_workers: Service) -> None:
    """The admission skips the wake-up of a flow last run at its start; the claim writes it when that no longer holds."""
    sdk, rdb = no_workers.client(), redis.Redis.from_url(no_workers.redis_url)
    queued = rdb.llen(SETTINGS.drive_queue)
    create(sdk, "changes", pass_flow(2))
    assert start(sdk, "changes", "c1", '{"n": 1}').status == "Succeeded"
    sdk.update_flow(models.UpdateFlowRequest(name="changes", definition=WAIT, description=""))
    assert start(sdk, "changes", "c2").status == "Running"
    assert keys.execution_tag(flow_id(rdb, "changes"), "c2").encode() in wakes(rdb)  # the claim's own (Store.claim_execution)
    assert rdb.llen(SETTINGS.drive_queue) == queued + 1  # handed to the workers


def test_the_front_door_counts_the_executions_it_ends(tmp_path_factory: pytest.TempPathFactory) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with running_service(tmp_path_factory.mktemp("puremetrics"), workers=0, timers=0, OPENFNF_PURE_AT_START_EVENTS=DEFAULT_BUDGET) as svc:
        sdk = svc.client()
        create(sdk, "counted", pass_flow(3))
        create(sdk, "counted_fail", FAIL)
        for i in range(4):
            start(sdk, "counted", f"c{i}", '{"n": 0}')
        start(sdk, "counted_fail", "f")
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    samples = {(s.name, s.labels.get("status")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("openfnf_executions_total", "Started")] == 5
    assert samples[("openfnf_executions_total", "Succeeded")] == 4
    assert samples[("openfnf_executions_total", "Failed")] == 1


def test_over_the_budget_or_with_it_off_the_workers_run_it_and_a_failed_one_redrives_on_them(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_service(tmp_path_factory.mktemp("budget"), workers=0, timers=1, OPENFNF_PURE_AT_START_EVENTS="8") as svc:
        sdk, rdb = svc.client(), redis.Redis.from_url(svc.redis_url)
        create(sdk, "small", pass_flow(1))
        create(sdk, "big", pass_flow(10))
        create(sdk, "fails", FAIL)
        assert start(sdk, "small", "s", '{"n": 5}').status == "Succeeded"  # within 8 events
        assert start(sdk, "big", "b", '{"n": 5}').status == "Running"  # 10 states write more: the workers run it
        assert start(sdk, "fails", "f").status == "Failed"
        assert redrive_execution(sdk, "fails", "f")["Status"] == "Running"  # reopened from the state its start stored
        svc.start("worker0", "worker", "--hostname", "w0@%h")
        deadline = time.monotonic() + 60
        while (describe(sdk, "big", "b").status, describe(sdk, "fails", "f").status) != ("Succeeded", "Failed"):
            assert time.monotonic() < deadline, "the workers did not finish what the start left them"
            time.sleep(0.1)
        assert json.loads(describe(sdk, "big", "b").output) == {"n": 50}
        kinds = [e.type for e in history(sdk, "fails", "f")]
        assert kinds.count("ExecutionFailed") == 2 and "ExecutionRedriven" in kinds, kinds
        assert runcount.read_total_sync(rdb, ACCOUNT, SETTINGS.running_shards) == 0


def test_the_old_sdk_reads_the_ended_execution_from_the_start_too(no_workers: Service) -> None:
    from aliyunsdkfnf.request.v20190315 import CreateFlowRequest, DescribeExecutionRequest, StartExecutionRequest

    def old(request: Any) -> Any:
        request.set_endpoint(no_workers.endpoint)
        request.set_protocol_type("http")
        return json.loads(no_workers.old_client().do_action_with_exception(request))

    create = CreateFlowRequest.CreateFlowRequest()
    create.set_Name("old_sdk_pure")
    create.set_Definition(pass_flow(2))
    create.set_Description("")
    create.set_Type("FDL")
    old(create)
    start_request = StartExecutionRequest.StartExecutionRequest()
    start_request.set_FlowName("old_sdk_pure")
    start_request.set_ExecutionName("o1")
    start_request.set_Input('{"n": 2}')
    answer = old(start_request)
    assert (answer["Status"], json.loads(answer["Output"])) == ("Succeeded", {"n": 3})
    describe_request = DescribeExecutionRequest.DescribeExecutionRequest()
    describe_request.set_FlowName("old_sdk_pure")
    describe_request.set_ExecutionName("o1")
    assert old(describe_request)["StoppedTime"] == answer["StoppedTime"]


def test_a_front_door_killed_after_the_claim_of_a_pure_flow_leaves_it_ended_whole(no_workers: Service) -> None:
    """SIGKILL-equivalent exit right after the claim (the fault point api.after_claim): the execution was written
    ended, whole, by that one atomic script; nothing is left to drive, and a retry finds it ended."""
    from openfnf.redisserver import free_port
    from tests.conftest import new_sdk_client

    sdk, rdb = no_workers.client(), redis.Redis.from_url(no_workers.redis_url)
    create(sdk, "crashy_pure", pass_flow(10))
    port = free_port()
    no_workers.start("api_dies", "api", "--port", str(port), env={"OPENFNF_FAULT_POINTS": '["api.after_claim"]'})
    doomed = new_sdk_client(f"127.0.0.1:{port}", no_workers.key_id, no_workers.secret)
    with pytest.raises(Exception):  # noqa: B017 - the connection dies with the process; any client error
        start(doomed, "crashy_pure", "orphan", '{"n": 1}')
    assert no_workers.procs["api_dies"].wait(30) == 137  # it really died at the fault point
    no_workers.procs.pop("api_dies")
    seen = describe(sdk, "crashy_pure", "orphan")
    assert (seen.status, json.loads(seen.output)) == ("Succeeded", {"n": 46})
    kinds = [e.type for e in history(sdk, "crashy_pure", "orphan")]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded" and kinds.count("StepEntered") == 10
    assert keys.pending_start(ACCOUNT, "crashy_pure", "orphan").encode() not in wakes(rdb)  # the admission's, removed once the claim won
    with pytest.raises(TeaException) as again:
        start(sdk, "crashy_pure", "orphan", '{"n": 1}')
    assert again.value.code == "ExecutionAlreadyExists"


def test_start_sync_execution_of_a_pure_express_flow_answers_from_its_start(no_workers: Service) -> None:
    """No worker runs here: the answer can only come from the start itself; nothing is armed for it."""
    sdk, rdb = no_workers.client(), redis.Redis.from_url(no_workers.redis_url)
    for name, definition in (("express_pure", pass_flow(10)), ("express_fail", FAIL)):
        sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL", execution_mode="Express"))
    timers_before = sum(rdb.zcard(keys.timers(p, SETTINGS.partitions)) for p in range(SETTINGS.partitions))
    ok = sdk.start_sync_execution(models.StartSyncExecutionRequest(flow_name="express_pure", execution_name="s1", input='{"n": 0}')).body
    assert (ok.status, json.loads(ok.output), ok.name.startswith("s1:")) == ("Succeeded", {"n": 45}, True)
    assert ok.stopped_time >= ok.started_time
    failed = sdk.start_sync_execution(models.StartSyncExecutionRequest(flow_name="express_fail")).body
    assert (failed.status, failed.error_code, failed.error_message) == ("Failed", "Refused", "by the flow")
    assert sum(rdb.zcard(keys.timers(p, SETTINGS.partitions)) for p in range(SETTINGS.partitions)) == timers_before  # no Express timeout armed
    assert not {m for m in wakes(rdb) if m.startswith(flow_id(rdb, "express_pure").encode())}
    assert describe(sdk, "express_pure", ok.name).status == "Succeeded"
