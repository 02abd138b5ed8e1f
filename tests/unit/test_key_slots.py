"""Every Lua script and every MULTI touches one Redis Cluster hash slot, with its KEYS built by the
code's own builders (common/keys.py), and the partitioned sets spread over the slots (issue 17)."""
from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import key_slot

from api.throttle import Check
from common import keys
from common.reports import report_keys
from common.scripts import NAMES
from common.tokens import TaskRef

TAG = keys.execution_tag("3f2a9c1e-flow-id", "execution-1")
ACCOUNT, FLOW = "1234567890", "orders"
N = 16


def _gcra_keys() -> list[str]:
    buckets = [keys.gcra_bucket(ACCOUNT, scope, subject, "StartExecution") for scope, subject in (("account", ""), ("key", "AK"), ("flow", FLOW))]
    return Check(keys=buckets, args=[], cap=1, account=ACCOUNT).keys


# Each script, with the KEYS every call site builds (several lists where several sites call it).
SCRIPT_KEYS: dict[str, list[list[str]]] = {
    "claim": [[keys.execution(TAG), keys.inbox(TAG)], [keys.execution(TAG), keys.history(TAG)], [keys.maprun(TAG), keys.maprun_inbox(TAG)]],
    "commit": [keys.execution_keys(TAG)],
    "append": [[keys.execution(TAG), keys.inbox(TAG)]],
    "watch": [[keys.execution(TAG)]],
    "report": [report_keys(TaskRef(*keys.split_tag(TAG), "7"))],
    "create_flow": [keys.flow_keys(ACCOUNT, FLOW)],
    "update_flow": [[keys.flow(ACCOUNT, FLOW)]],
    "delete_flow": [keys.flow_keys(ACCOUNT, FLOW)],
    "publish_version": [keys.flow_keys(ACCOUNT, FLOW)],
    "put_alias": [keys.flow_keys(ACCOUNT, FLOW)],
    "delete_version": [keys.flow_keys(ACCOUNT, FLOW)],
    "put_schedule": [[keys.flow(ACCOUNT, FLOW), keys.schedule(ACCOUNT, "fid", "s"), keys.schedule_index(ACCOUNT, "fid")]],
    "arm_schedule": [[keys.schedule(ACCOUNT, "fid", "s")]],
    "gcra": [_gcra_keys()],
    "gcra_refund": [_gcra_keys()],
    "claim_due": [[f(p, N)] for f in (keys.wake, keys.timers, keys.activities, keys.schedules_due, keys.maprun_wake) for p in range(N)],
    "release_if": [[f(p, N)] for f in (keys.wake, keys.timers, keys.schedules_due) for p in range(N)],
    "partition_lease": [[keys.partition_lease(p, N)] for p in range(N)],
    "adopt": [[keys.execution(TAG), keys.tasks(TAG), keys.children(TAG)]],
    "stop_child": [[keys.execution(TAG), keys.inbox(TAG), keys.children(TAG)]],
    "reopen": [[*keys.execution_keys(TAG), keys.tasks(TAG)]],
    "maprun_acquire": [keys.maprun_keys(TAG)[:3]],
    "maprun_commit": [keys.maprun_keys(TAG)],
    "maprun_child_end": [[keys.maprun(TAG), keys.maprun_inbox(TAG), keys.maprun_running(TAG)]],
    "maprun_update": [[keys.maprun(TAG), keys.maprun_inbox(TAG)]],
    "maprun_child_done": [[keys.execution(TAG), keys.history(TAG)]],
}

# Every MULTI (pipeline(transaction=True)) and the keys it touches.
MULTI_KEYS = [
    [keys.schedule(ACCOUNT, "fid", "s"), keys.schedule_index(ACCOUNT, "fid")],  # schedule delete / orphan drop
]


def test_every_script_is_listed() -> None:
    assert set(SCRIPT_KEYS) == set(NAMES)


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_each_script_call_touches_one_slot(name: str) -> None:
    calls = SCRIPT_KEYS[name]
    assert calls, f"{name}: no call site listed"
    for script_keys in calls:
        assert len({key_slot(k.encode()) for k in script_keys}) == 1, (name, script_keys)


def test_each_multi_touches_one_slot() -> None:
    for multi in MULTI_KEYS:
        assert len({key_slot(k.encode()) for k in multi}) == 1, multi


def test_a_partitions_keys_share_its_slot_and_partitions_spread_over_the_slots() -> None:
    for n in (1, 3, 16, 64):
        slots = []
        for p in range(n):
            mine = {key_slot(f(p, n).encode()) for f in (keys.wake, keys.timers, keys.activities, keys.activity_commands, keys.activity_starts, keys.schedules_due, keys.maprun_wake, keys.partition_lease)}
            assert len(mine) == 1
            slots.append(mine.pop())
        assert len(set(slots)) == n  # one slot each
        # Over three equal slot ranges (a 3-primary cluster), no range holds more than its share + 1.
        per = Counter(s * 3 // 16384 for s in slots)
        assert max(per.values()) <= -(-n // 3) + 1, per


def test_members_spread_over_the_partitions_and_nonces_over_the_slots() -> None:
    tags = [keys.execution_tag("flow", f"e{i}") for i in range(10_000)]
    per = Counter(keys.partition(t, N) for t in tags)
    assert len(per) == N and max(per.values()) < 2 * 10_000 / N
    nonces = Counter(key_slot(keys.signature_nonce("AK", f"nonce-{i}", ACCOUNT).encode()) * 3 // 16384 for i in range(3000))
    assert len(nonces) == 3 and max(nonces.values()) < 3000 / 2
    # An execution's keys stay together (its scripts' rule), whatever the execution.
    for t in tags[:100]:
        assert len({key_slot(k.encode()) for k in [*keys.execution_keys(t), keys.tasks(t)]}) == 1


def test_the_running_counts_shards_spread_over_the_slots_and_never_meet_another_accounts() -> None:
    shards = [keys.running(ACCOUNT, k) for k in range(8)]
    assert shards[0] == "fnf:run:{1234567890}"  # the single counter of before: an upgrade keeps its count
    slots = {key_slot(k.encode()) for k in shards}
    assert len(slots) == 8  # a slot each
    assert len({s * 3 // 16384 for s in slots}) > 1  # over a 3-primary cluster's ranges, more than one
    # No account's shard is another account's shard (an account id may hold a colon).
    assert keys.running("x", 1) != keys.running("1:x", 0) and keys.running("x", 1) != keys.running("1:x", 1)
