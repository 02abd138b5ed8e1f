"""claim.lua given a retention, and Store.claim_execution for a flow run to its end at its start (common/purestart.py), on a real
redis-server: the ended record and history written at once with their retention, nothing that guards a running one."""
from __future__ import annotations

import time
from typing import Any

import redis

from common import keys
from common.claims import queue_claim, started_event
from common.fdl import parse_definition
from common.purestart import execution_limits, run_at_start
from common.records import decode_history
from common.redisclients import async_state_client
from common.scripts import Scripts
from common.settings import Settings
from common.store import Store

FLOW_ID, ACCOUNT = "f1d0-claim-ended", "1234567890"
FLOW = {"Id": FLOW_ID, "Name": "pure", "DefId": "d" * 32}
DEFINITION = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    Next: B\n  - Type: Pass\n    Name: B\n    End: true\n"


def _settings(url: str) -> Settings:
    return Settings(redis_url=url, _env_file=None)


def _ended(name: str, now: int) -> Any:
    ended = run_at_start(parse_definition(DEFINITION), started_event({"a": 1}, name, "pure"), now, execution_limits(Settings(_env_file=None)), 500)
    assert ended is not None
    return ended


def _claim(r: redis.Redis, settings: Settings, name: str, ended: Any, now: int) -> Any:
    held: list[Any] = []

    def build(pipe: Any) -> None:
        held.append(queue_claim(Scripts(r), pipe, settings, account=ACCOUNT, flow=FLOW, name=name, raw_input='{"a":1}',
                                input_obj={"a": 1}, def_id=FLOW["DefId"], now=now, ended=ended))  # fmt: skip

    results = Scripts(r).pipeline_sync(build)
    return held[0].outcome(results)


def test_the_claim_writes_the_ended_execution_with_its_retention_and_nothing_for_a_running_one(r: redis.Redis, redis_server: str) -> None:
    settings = _settings(redis_server)
    now = int(time.time() * 1000)
    tag = keys.execution_tag(FLOW_ID, "e1")
    ended = _ended("e1", now)
    claim = _claim(r, settings, "e1", ended, now)
    assert claim.created and claim.fields["status"] == "Succeeded" and claim.fields["name"] == "e1"
    record = {k.decode(): v.decode() for k, v in r.hgetall(keys.execution(tag)).items()}
    assert record["status"] == "Succeeded" and record["output"] == '{"a":1}' and record["stopped"] == str(now)
    assert record["acct"] == ACCOUNT and record["input"] == '{"a":1}' and record["started"] == str(now)
    assert list(record).count("status") == 1
    events = decode_history(r.lrange(keys.history(tag), 0, -1))
    assert [e.type for e in events][0] == "ExecutionStarted" and events[-1].type == "ExecutionSucceeded"
    assert record["hseq"] == str(len(events))
    for key in (keys.execution(tag), keys.history(tag)):
        assert 0 < r.ttl(key) <= settings.retention_seconds
    assert r.zscore(keys.executions_index(FLOW_ID), "e1") == now  # listed like any execution
    assert not r.exists(keys.inbox(tag), keys.lease(tag))
    wakes = [keys.wake(p, settings.partitions) for p in range(settings.partitions)]
    assert sum(r.zcard(w) for w in wakes) == 0  # no wake-up: nothing is left to drive


def test_a_taken_name_answers_its_holder_and_writes_nothing(r: redis.Redis, redis_server: str) -> None:
    settings = _settings(redis_server)
    now = int(time.time() * 1000)
    tag = keys.execution_tag(FLOW_ID, "taken")
    r.hset(keys.execution(tag), mapping={"status": "Running", "input": "{}", "started": "5", "defid": "d0"})
    claim = _claim(r, settings, "taken", _ended("taken", now), now)
    assert not claim.created and claim.fields["status"] == "Running" and claim.fields["started"] == "5"
    assert r.hget(keys.execution(tag), "status") == b"Running" and not r.exists(keys.history(tag))
    assert r.ttl(keys.execution(tag)) == -1


async def test_the_store_removes_the_admissions_wake_up_only_once_the_claim_is_won(r: redis.Redis, redis_server: str) -> None:
    settings = _settings(redis_server)
    client = async_state_client(settings)
    store = Store(client, settings)
    now = int(time.time() * 1000)
    won, lost = keys.pending_start(ACCOUNT, "pure", "won"), keys.pending_start(ACCOUNT, "pure", "lost")
    for member in (won, lost):  # as the admission writes them (api/admission.py)
        r.zadd(keys.wake_for(member, settings.partitions), {member: now + 5000})
    r.hset(keys.execution(keys.execution_tag(FLOW_ID, "lost")), mapping={"status": "Running", "defid": "d0"})
    try:
        for name in ("won", "lost"):
            await store.claim_execution(account=ACCOUNT, flow=FLOW, name=name, raw_input="{}", input_obj={}, def_id=FLOW["DefId"],
                                        qualifier="", callback="", now=now, woken=True, ended=_ended(name, now))  # fmt: skip
    finally:
        await client.aclose()
    assert r.zscore(keys.wake_for(won, settings.partitions), won) is None
    # the running execution holding the name keeps its own wake-up (the same member)
    assert r.zscore(keys.wake_for(lost, settings.partitions), lost) == now + 5000
