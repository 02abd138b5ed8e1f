"""Schedules through the official SDK on real processes (one front door, one worker, TWO timers processes)."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from common import keys
from tests.conftest import Service, running_service

pytestmark = pytest.mark.e2e

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ECHO = """Type: StateMachine
SpecVersion: v1
StartAt: Echo
States:
  - Type: Pass
    Name: Echo
    OutputConstructor:
      got.$: $Input
    End: true
"""
TICK = re.compile(r"^(?P<schedule>.+)-(?P<tick>\d{8}T\d{6}Z)$")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("sched"), workers=1, timers=2) as service:
        yield service


@pytest.fixture(scope="module")
def sdk(svc: Service) -> Any:
    return svc.client()


def create_flow(sdk: Any, name: str) -> None:
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=ECHO, description="", type="FDL"))


def create(sdk: Any, flow: str, name: str, cron: str = "@every 1s", **kw: Any) -> Any:
    return sdk.create_schedule(models.CreateScheduleRequest(flow_name=flow, schedule_name=name, cron_expression=cron, **kw)).body


def update(sdk: Any, flow: str, name: str, **kw: Any) -> Any:
    return sdk.update_schedule(models.UpdateScheduleRequest(flow_name=flow, schedule_name=name, **kw)).body


def describe(sdk: Any, flow: str, name: str) -> Any:
    return sdk.describe_schedule(models.DescribeScheduleRequest(flow_name=flow, schedule_name=name)).body


def error_of(call: Callable[[], Any]) -> TeaException:
    with pytest.raises(TeaException) as info:
        call()
    return info.value


def executions(sdk: Any, flow: str) -> list[Any]:
    out, token = [], None
    while True:
        body = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, limit=100, next_token=token)).body
        out.extend(body.executions or [])
        token = body.next_token
        if not token:
            return out


def tick_of(name: str) -> int:
    """The tick (epoch s) an execution started by a schedule is named after."""
    match = TICK.match(name)
    assert match, name
    return int(datetime.strptime(match.group("tick"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_create_describe_update_list_delete(sdk: Any) -> None:
    create_flow(sdk, "crud_flow")
    made = create(sdk, "crud_flow", "nightly", "0 30 2 * * *", payload='{"a": 1}', enable=False, description="night run")
    assert (made.schedule_name, made.cron_expression, made.payload, made.enable, made.description) == (
        "nightly", "0 30 2 * * *", '{"a": 1}', False, "night run"
    )  # fmt: skip
    assert re.match(r"^[0-9a-f-]{36}$", made.schedule_id)
    assert RFC3339_MS.match(made.created_time) and made.last_modified_time == made.created_time
    got = describe(sdk, "crud_flow", "nightly")
    assert got.to_map() == {**made.to_map(), "RequestId": got.request_id}
    changed = update(sdk, "crud_flow", "nightly", cron_expression="CRON_TZ=Asia/Shanghai 0 0 9 * * MON-FRI", enable=True)
    assert (changed.cron_expression, changed.enable, changed.payload, changed.description) == (
        "CRON_TZ=Asia/Shanghai 0 0 9 * * MON-FRI", True, '{"a": 1}', "night run"
    )  # fmt: skip
    assert changed.schedule_id == made.schedule_id and changed.created_time == made.created_time
    assert changed.last_modified_time >= made.last_modified_time
    assert update(sdk, "crud_flow", "nightly", payload='{"b": 2}', description="").payload == '{"b": 2}'
    assert describe(sdk, "crud_flow", "nightly").description == ""
    sdk.delete_schedule(models.DeleteScheduleRequest(flow_name="crud_flow", schedule_name="nightly"))
    err = error_of(lambda: describe(sdk, "crud_flow", "nightly"))
    assert (err.code, err.statusCode) == ("ScheduleNotExists", 404)
    assert "The schedule nightly for flow crud_flow does not exist." in err.message


def test_list_schedules_pages_by_name(sdk: Any) -> None:
    create_flow(sdk, "list_flow")
    for name in ("c", "a", "e", "b", "d"):
        create(sdk, "list_flow", name, "@every 1h")
    seen, token, pages = [], None, 0
    while True:
        body = sdk.list_schedules(models.ListSchedulesRequest(flow_name="list_flow", limit=2, next_token=token)).body
        seen += [s.schedule_name for s in body.schedules]
        pages += 1
        token = body.next_token
        if not token:
            break
    assert (seen, pages) == (["a", "b", "c", "d", "e"], 3)
    first = sdk.list_schedules(models.ListSchedulesRequest(flow_name="list_flow")).body
    assert [s.schedule_name for s in first.schedules] == ["a", "b", "c", "d", "e"] and first.next_token is None
    assert first.schedules[0].cron_expression == "@every 1h" and first.schedules[0].enable is False
    for limit in (0, 1001):
        err = error_of(lambda limit=limit: sdk.list_schedules(models.ListSchedulesRequest(flow_name="list_flow", limit=limit)))
        assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "Limit" in err.message
    assert sdk.list_schedules(models.ListSchedulesRequest(flow_name="list_flow", limit=1000)).body.next_token is None


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * *", "CronExpression field 'hour' value 25 is out of range 0-23"),
        ("0 0 0 * * 9", "CronExpression field 'day-of-week' value 9 is out of range 0-7"),
        ("* * *", "CronExpression must have 6 fields"),
        ("@every 0s", "must be at least 1 second"),
        ("@every 5 minutes", "is not a duration"),
        ("CRON_TZ=Nowhere/Town 0 0 * * *", "time zone 'Nowhere/Town'"),
    ],
)
def test_invalid_cron_expressions_are_invalid_argument(sdk: Any, cron: str, message: str) -> None:
    create_flow_once(sdk, "cron_flow")
    err = error_of(lambda: create(sdk, "cron_flow", "bad", cron))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and message in err.message
    if not _exists(sdk, "cron_flow", "good"):
        create(sdk, "cron_flow", "good", "@every 1h")
    err = error_of(lambda: update(sdk, "cron_flow", "good", cron_expression=cron))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and message in err.message


def create_flow_once(sdk: Any, name: str) -> None:
    try:
        create_flow(sdk, name)
    except TeaException as exc:
        assert exc.code == "FlowAlreadyExists"


def _exists(sdk: Any, flow: str, name: str) -> bool:
    try:
        describe(sdk, flow, name)
        return True
    except TeaException:
        return False


def test_documented_errors(sdk: Any) -> None:
    create_flow(sdk, "err_flow")
    create(sdk, "err_flow", "taken")
    err = error_of(lambda: create(sdk, "err_flow", "taken"))
    assert (err.code, err.statusCode) == ("ScheduleAlreadyExists", 409)
    assert "The schedule taken already exists in flow err_flow." in err.message
    for call in (
        lambda: create(sdk, "no_such_flow", "s"),
        lambda: update(sdk, "no_such_flow", "s", enable=True),
        lambda: describe(sdk, "no_such_flow", "s"),
        lambda: sdk.delete_schedule(models.DeleteScheduleRequest(flow_name="no_such_flow", schedule_name="s")),
        lambda: sdk.list_schedules(models.ListSchedulesRequest(flow_name="no_such_flow")),
    ):
        err = error_of(call)
        assert (err.code, err.statusCode) == ("FlowNotExists", 404)
    for call in (
        lambda: update(sdk, "err_flow", "absent", enable=True),
        lambda: describe(sdk, "err_flow", "absent"),
        lambda: sdk.delete_schedule(models.DeleteScheduleRequest(flow_name="err_flow", schedule_name="absent")),
    ):
        err = error_of(call)
        assert (err.code, err.statusCode) == ("ScheduleNotExists", 404)
    for bad, rule in (("9lives", "must start with a letter or an underscore"), ("a.b", "may contain only"), ("x" * 129, "1 to 128")):
        err = error_of(lambda bad=bad: create(sdk, "err_flow", bad))
        assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "ScheduleName" in err.message and rule in err.message
    for payload in ("[1, 2]", "not json", '"text"'):
        err = error_of(lambda payload=payload: create(sdk, "err_flow", "p", payload=payload))
        assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "Payload" in err.message
    err = error_of(lambda: update(sdk, "err_flow", "taken", payload="[]"))
    assert (err.code, err.statusCode) == ("InvalidArgument", 400) and "Payload" in err.message
    err = error_of(lambda: sdk.create_schedule(models.CreateScheduleRequest(flow_name="err_flow", schedule_name="c")))
    assert (err.code, err.statusCode) == ("MissingRequiredParams", 400) and "CronExpression" in err.message


def test_every_second_for_ten_seconds_across_two_timers_processes(sdk: Any, svc: Service) -> None:
    """The issue's acceptance test: one execution per second, for 10 seconds, with two timers processes running."""
    assert {"timers0", "timers1"} <= set(svc.procs)
    create_flow(sdk, "tick_flow")
    made = create(sdk, "tick_flow", "tick", "@every 1s", payload='{"n": 7}', enable=True)
    created = datetime.strptime(made.created_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    first = int(created) + 1  # the first tick is one second after creation (whole seconds)
    # Ten seconds of schedule: wait for the execution of the tenth tick (a timers process slowed down
    # by a busy machine fires late ticks late, not never); each execution is named after its tick.
    wait_for(lambda: any(tick_of(e.name) >= first + 9 for e in executions(sdk, "tick_flow")), timeout=60, what="the tenth tick")
    update(sdk, "tick_flow", "tick", enable=False)
    runs = executions(sdk, "tick_flow")
    ticks = sorted(tick_of(e.name) for e in runs)
    assert ticks[:10] == list(range(first, first + 10)), ticks  # the ten seconds after creation, each once
    assert ticks == list(range(first, first + len(ticks)))  # one per second: none twice, none skipped
    for run in runs:
        done = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="tick_flow", execution_name=run.name, wait_time_seconds=30)).body
        assert done.status == "Succeeded" and json.loads(done.output) == {"got": {"n": 7}}  # Payload is the input
        assert done.input == '{"n": 7}'
    # Disabled: the timers drop its wake-up at the next tick and start nothing more.
    state = _state(svc)
    wait_for(lambda: not _due_for(state, "tick_flow", "tick"), what="the disabled schedule to be dropped")
    assert len(executions(sdk, "tick_flow")) == len(runs)


def _state(svc: Service) -> Any:
    """A client of the service's state Redis (a cluster client when it runs on one: test_cluster_schedules)."""
    if svc.env_extra.get("OPENFNF_REDIS_CLUSTER") == "true":
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(svc.redis_url.split(",")[0])
    return redis.Redis.from_url(svc.redis_url)


def _due_for(state: redis.Redis, flow: str, schedule: str) -> bool:
    """Whether the timers still hold a wake-up for this schedule (the due zset's member names flow and schedule)."""
    return any(json.loads(m)[1::2] == [flow, schedule] for p in range(16) for m in state.zrange(keys.schedules_due(p, 16), 0, -1))


def test_deleting_the_flow_stops_its_schedules(sdk: Any, svc: Service) -> None:
    create_flow(sdk, "doomed")
    create(sdk, "doomed", "beat", "@every 1s", enable=True)
    wait_for(lambda: executions(sdk, "doomed"), what="a first execution")
    sdk.delete_flow(models.DeleteFlowRequest(name="doomed"))
    err = error_of(lambda: describe(sdk, "doomed", "beat"))
    assert err.code == "FlowNotExists"
    create_flow(sdk, "doomed")  # the same name again: a new flow, without the old schedules
    assert sdk.list_schedules(models.ListSchedulesRequest(flow_name="doomed")).body.schedules == []
    state = _state(svc)
    wait_for(lambda: not _due_for(state, "doomed", "beat"), what="the deleted flow's schedule to be dropped")
    assert executions(sdk, "doomed") == []


def test_a_restart_fires_missed_ticks_once_then_goes_on(sdk: Any, svc: Service) -> None:
    create_flow(sdk, "restart_flow")
    create(sdk, "restart_flow", "beat", "@every 1s", enable=True)
    wait_for(lambda: executions(sdk, "restart_flow"), what="a first execution")
    svc.stop("timers0")
    svc.stop("timers1")
    before = {e.name for e in executions(sdk, "restart_flow")}
    last_before = max(tick_of(n) for n in before)
    # Every timers process is down while the next two ticks come due (and half a second more).
    wait_for(lambda: time.time() >= last_before + 2.5, timeout=10, what="two ticks to come due with no timers process")
    # A catch-up window shorter than the outage (the default, 10 s, would replay these ticks one by one).
    svc.start("timers0", "timers", env={"OPENFNF_SCHEDULE_CATCHUP_SECONDS": "1"})
    up = time.time()
    wait_for(lambda: len(executions(sdk, "restart_flow")) >= len(before) + 2, what="the missed tick and a regular one")
    update(sdk, "restart_flow", "beat", enable=False)
    svc.start("timers1", "timers")
    after = sorted(tick_of(e.name) for e in executions(sdk, "restart_flow") if e.name not in before)
    missed = [t for t in after if t < int(up)]
    assert missed == [last_before + 1], (last_before, up, after)  # the first missed tick, once: no burst
    assert all(t >= int(up) for t in after[1:])  # then on from the restart
    assert len(after) == len(set(after))


def test_the_older_sdk_manages_schedules_too(svc: Service) -> None:
    """aliyun-python-sdk-fnf sends the same form fields (Enable as Python's True/False)."""
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkfnf.request.v20190315 import CreateScheduleRequest, DescribeScheduleRequest, ListSchedulesRequest

    def call(request: Any) -> Any:
        request.set_endpoint(svc.endpoint)
        request.set_protocol_type("http")
        return json.loads(svc.old_client().do_action_with_exception(request))

    create_flow(svc.client(), "old_sdk_flow")
    req = CreateScheduleRequest.CreateScheduleRequest()
    req.set_FlowName("old_sdk_flow")
    req.set_ScheduleName("old")
    req.set_CronExpression("0 0 * * * ?")
    req.set_Enable(True)
    req.set_Payload('{"x": 1}')
    made = call(req)
    assert (made["ScheduleName"], made["Enable"], made["Payload"]) == ("old", True, '{"x": 1}')
    got = DescribeScheduleRequest.DescribeScheduleRequest()
    got.set_FlowName("old_sdk_flow")
    got.set_ScheduleName("old")
    assert call(got)["ScheduleId"] == made["ScheduleId"]
    listed = ListSchedulesRequest.ListSchedulesRequest()
    listed.set_FlowName("old_sdk_flow")
    assert [s["ScheduleName"] for s in call(listed)["Schedules"]] == ["old"]
    with pytest.raises(ServerException) as info:
        call(req)
    assert (info.value.get_error_code(), info.value.get_http_status()) == ("ScheduleAlreadyExists", 409)
