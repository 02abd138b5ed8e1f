"""Every script of common/lua against a real redis-server (the fixture's, never the shared 6379)."""
from __future__ import annotations

import json

import redis

from common import keys
from common.driverscripts import HELD, NO_EXECUTION, acquire_sync
from common.scripts import NAMES, Scripts, source

TAG = keys.execution_tag("flow-id-1", "exec1")
XKEYS = keys.execution_keys(TAG)


def _claim(s: Scripts, fields: list[str] | None = None) -> list[object]:
    fields = fields or ["status", "Running", "input", "{}", "defid", "d1", "started", "1000", "output", "", "stopped", ""]
    return s.claim(keys=XKEYS[:2], args=[json.dumps({"t": "Started"}), 0, *fields])


def test_every_script_has_a_documented_header() -> None:
    for name in NAMES:
        head = source(name).splitlines()[:3]
        assert head[0].startswith(f"-- {name}.lua:"), name
        assert any("KEYS[1]" in line for line in source(name).splitlines()[:12]), name


def test_claim_once_then_report_the_holder(r: redis.Redis) -> None:
    s = Scripts(r)
    assert _claim(s) == [1]
    assert r.hget(XKEYS[0], "status") == b"Running"
    assert r.lrange(XKEYS[1], 0, -1) == [b'{"t": "Started"}']
    again = _claim(s, ["status", "Running", "input", '{"other":1}', "defid", "d2", "started", "2000"])
    assert again == [0, b"Running", b"{}", b"", b"1000", b"", b"d1"]
    assert r.llen(XKEYS[1]) == 1  # the second claim queued nothing


def test_acquire_fences_and_commit_checks_the_fence(r: redis.Redis) -> None:
    s = Scripts(r)
    assert acquire_sync(r, TAG, 5000, "t1").token == NO_EXECUTION  # no such execution
    assert not r.exists(XKEYS[0]) and not r.exists(XKEYS[3])  # and nothing left for it (its stray lease let go)
    _claim(s)
    got = acquire_sync(r, TAG, 5000, "t1")
    assert (got.token, got.status, got.def_id, got.inbox) == ("t1", "Running", "d1", ('{"t": "Started"}',))
    assert r.get(XKEYS[3]) == b"t1" and 0 < r.pttl(XKEYS[3]) <= 5000
    assert acquire_sync(r, TAG, 5000, "t2").token == HELD
    assert r.get(XKEYS[3]) == b"t1"  # the holder keeps its lease
    r.rpush(XKEYS[1], b'{"t":"Late"}')  # arrives while the driver works
    left = s.commit(keys=XKEYS, args=["t1", 1, '{"seq":3}', '[["e"]]', 3, 0, keys.DONE_CHANNEL, TAG, "status", "Running"])
    assert left == 1
    assert r.lrange(XKEYS[1], 0, -1) == [b'{"t":"Late"}']
    assert r.hget(XKEYS[0], "state") == b'{"seq":3}' and r.hget(XKEYS[0], "hseq") == b"3"
    assert r.lrange(XKEYS[2], 0, -1) == [b'[["e"]]']
    assert not r.exists(XKEYS[3])
    # A stale driver (old token) writes nothing.
    assert acquire_sync(r, TAG, 5000, "t3").token == "t3"
    assert s.commit(keys=XKEYS, args=["t1", 0, "{}", "", 0, 0, keys.DONE_CHANNEL, TAG]) == -1
    assert r.hget(XKEYS[0], "state") == b'{"seq":3}'
    # The holder's commit takes the rest; an emptied inbox is deleted with the lease.
    assert s.commit(keys=XKEYS, args=["t3", 1, '{"seq":4}', "", 3, 0, keys.DONE_CHANNEL, TAG]) == 0
    assert not r.exists(XKEYS[1]) and not r.exists(XKEYS[3])


def test_lease_expires(r: redis.Redis) -> None:
    s = Scripts(r)
    _claim(s)
    assert acquire_sync(r, TAG, 1, "t1").token == "t1"
    r.pexpire(XKEYS[3], 1)
    while r.exists(XKEYS[3]):  # expired (Redis checks a key's expiry when it is read)
        pass
    assert acquire_sync(r, TAG, 5000, "t2").token == "t2"  # a new holder after expiry
    assert s.commit(keys=XKEYS, args=["t1", 1, "{}", "", 0, 0, keys.DONE_CHANNEL, TAG]) == -1  # the old one is fenced


def test_the_drive_mark_stays_while_the_lease_is_held_and_every_commit_clears_it(r: redis.Redis) -> None:
    s = Scripts(r)
    _claim(s)
    r.set(XKEYS[3], "other")  # held by another driver: its commit decides
    r.hset(XKEYS[0], "dq", "1000")
    assert acquire_sync(r, TAG, 5000, "t1").token == HELD
    assert r.hget(XKEYS[0], "dq") == b"1000" and r.get(XKEYS[3]) == b"other"
    r.delete(XKEYS[3])
    assert acquire_sync(r, TAG, 5000, "t1").token == "t1"
    assert r.hget(XKEYS[0], "dq") == b"1000"  # events arriving during the drive publish nothing: the commit counts them
    assert s.commit(keys=XKEYS, args=["t1", 1, "{}", "", 1, 0, keys.DONE_CHANNEL, TAG]) == 0
    assert not r.hexists(XKEYS[0], "dq")  # nothing left, and the next event publishes a drive


def test_the_commit_that_ends_an_execution_leaves_the_mark_which_nothing_reads_any_more(r: redis.Redis) -> None:
    s = Scripts(r)
    _claim(s)
    r.hset(XKEYS[0], "dq", "1000")
    assert acquire_sync(r, TAG, 5000, "t1").token == "t1"
    end = ["t1", 1, "{}", "", 1, 3600, keys.DONE_CHANNEL, TAG, "status", "Failed"]
    assert s.commit(keys=XKEYS, args=end) == 0
    assert r.hget(XKEYS[0], "dq") == b"1000"  # one call less: an ended execution takes no events
    assert s.append(keys=XKEYS[:2], args=["{}", 2000, 5000]) == [0, b"Failed"]  # so no drive is published
    assert s.reopen(keys=[*XKEYS, keys.tasks(TAG)], args=['{"t":"Redriven"}', 10, 3000, 1000]) == [1, 1]
    assert r.hget(XKEYS[0], "dq") == b"3000"  # a redrive marks its own drive afresh


def test_commit_at_the_end_deletes_the_children_hash_only_when_it_ends(r: redis.Redis) -> None:
    s = Scripts(r)
    _claim(s)
    kids = keys.children(TAG)
    r.hset(kids, "child-tag", "task-1")
    acquire_sync(r, TAG, 5000, "t1")
    r.rpush(XKEYS[1], b'{"t":"Late"}')
    assert s.commit(keys=[*XKEYS, kids], args=["t1", 1, "{}", "", 1, 0, keys.DONE_CHANNEL, TAG]) == 1
    assert r.hget(kids, "child-tag") == b"task-1"  # still running: its children stay
    acquire_sync(r, TAG, 5000, "t2")
    r.rpush(XKEYS[1], b'{"t":"Later"}')  # left behind by the ending drive: the inbox stays, and expires too
    assert s.commit(keys=[*XKEYS, kids], args=["t2", 1, "{}", "[1]", 2, 3600, keys.DONE_CHANNEL, TAG, "status", "Failed"]) == 1
    assert not r.exists(kids)
    assert 0 < r.ttl(XKEYS[1]) <= 3600 and 0 < r.ttl(XKEYS[2]) <= 3600 and 0 < r.ttl(XKEYS[0]) <= 3600


def test_commit_at_the_end_expires_and_publishes_only_when_watched(r: redis.Redis) -> None:
    s = Scripts(r)
    _claim(s)
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(keys.DONE_CHANNEL)
    sub.get_message(timeout=1)
    token = acquire_sync(r, TAG, 5000, "t1").token
    s.commit(keys=XKEYS, args=[token, 1, "{}", "", 0, 3600, keys.DONE_CHANNEL, TAG, "status", "Succeeded"])
    assert sub.get_message(timeout=0.2) is None  # nobody watched
    assert 0 < r.ttl(XKEYS[0]) <= 3600

    other = keys.execution_tag("flow-id-1", "exec2")
    okeys = keys.execution_keys(other)
    s.claim(keys=okeys[:2], args=["{}", 0, "status", "Running"])
    assert s.watch(keys=okeys[:1], args=["1", "status"]) == [b"Running"]
    token = acquire_sync(r, other, 5000, "t2").token
    s.commit(keys=okeys, args=[token, 1, "{}", "", 0, 3600, keys.DONE_CHANNEL, other, "status", "Failed"])
    msg = sub.get_message(timeout=2)
    assert msg is not None and msg["data"] == other.encode()


def test_watch_reads_and_marks_only_running(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.watch(keys=XKEYS[:1], args=["1", "status"]) is None
    _claim(s)
    assert s.watch(keys=XKEYS[:1], args=["0", "status", "defid"]) == [b"Running", b"d1"]
    assert not r.hexists(XKEYS[0], "watch")
    s.watch(keys=XKEYS[:1], args=["1", "status"])
    assert r.hget(XKEYS[0], "watch") == b"1"
    r.hset(XKEYS[0], mapping={"status": "Succeeded", "watch": ""})
    r.hdel(XKEYS[0], "watch")
    s.watch(keys=XKEYS[:1], args=["1", "status"])
    assert not r.hexists(XKEYS[0], "watch")  # an ended execution is not marked


def test_append_only_to_running(r: redis.Redis) -> None:
    s = Scripts(r)
    assert s.append(keys=XKEYS[:2], args=["{}"]) == [-1]
    _claim(s)
    assert s.append(keys=XKEYS[:2], args=['{"t":"StopRequested"}']) == [1, b"Running"]
    assert r.llen(XKEYS[1]) == 2
    for status in ("Succeeded", "Failed", "Stopped", "TimedOut"):
        r.hset(XKEYS[0], "status", status)
        assert s.append(keys=XKEYS[:2], args=["{}"]) == [0, status.encode()]
    assert r.llen(XKEYS[1]) == 2


def test_flow_scripts(r: redis.Redis) -> None:
    s = Scripts(r)
    fk, idx = keys.flow("acct", "f1"), keys.flow_index("acct")
    fkeys = keys.flow_keys("acct", "f1")
    assert s.create_flow(keys=[fk, idx], args=["f1", "Name", "f1", "Description", "a"]) == 1
    fkeys = keys.flow_keys("acct", "f1")
    assert s.create_flow(keys=[fk, idx], args=["f1", "Name", "f1", "Description", "b"]) == 0
    assert r.hget(fk, "Description") == b"a" and r.zrange(idx, 0, -1) == [b"f1"]
    assert s.update_flow(keys=[keys.flow("acct", "nope")], args=["Description", "x"]) == 0
    got = s.update_flow(keys=[fk], args=["Description", "c"])
    assert dict(zip(got[::2], got[1::2], strict=True)) == {b"Name": b"f1", b"Description": b"c"}
    assert s.delete_flow(keys=fkeys, args=["f1"]) == 1
    assert s.delete_flow(keys=fkeys, args=["f1"]) == 0
    assert not r.exists(fk) and r.zcard(idx) == 0


def test_claim_due_and_release_if(r: redis.Redis) -> None:
    s = Scripts(r)
    r.zadd("z", {"a": 100, "b": 200, "c": 5000})
    got = s.claim_due(keys=["z"], args=[1000, 10, 30000])
    assert got == [b"a", b"31000", b"b", b"31000"]
    assert r.zscore("z", "a") == 31000 and r.zscore("z", "c") == 5000
    assert s.claim_due(keys=["z"], args=[1000, 10, 30000]) == []  # claimed ones are not due again yet
    r.zadd("z", {"b": 40000})  # someone re-armed b
    assert s.release_if(keys=["z"], args=["a", "31000"]) == 1
    assert s.release_if(keys=["z"], args=["b", "31000"]) == 0
    assert r.zscore("z", "b") == 40000 and r.zscore("z", "a") is None
    assert s.claim_due(keys=["z"], args=[1000, 1, 30000]) == []
    assert len(s.claim_due(keys=["z"], args=[100000, 1, 10])) == 2  # the limit holds


def test_the_safety_net_holds_back_while_the_drive_queue_is_backlogged(r: redis.Redis) -> None:
    from common.settings import Settings
    from worker.timers import Timers

    settings = Settings(_env_file=None, rescue_backlog_limit=2, wake_after_ms=1000)
    timers = Timers(r, r, settings)
    s = Scripts(r)
    _claim(s)
    r.zadd(keys.wake_for(TAG, 16), {TAG: 0})
    r.rpush(settings.drive_queue, "a", "b", "c")  # a backlog of three queued drives
    assert timers.rescue(10_000) == 1
    assert r.llen(settings.drive_queue) == 3  # nothing more pushed
    assert r.zscore(keys.wake_for(TAG, 16), TAG) == 11_000  # still armed, a wake-up later
    r.delete(settings.drive_queue)
    assert timers.rescue(20_000) == 1
    assert r.llen(settings.drive_queue) == 1  # the queue is short again: re-driven


def test_a_lost_activity_is_published_again_and_an_ended_executions_is_forgotten(r: redis.Redis) -> None:
    from common.settings import Settings
    from common.taskmsg import ACTIVITY_TASK
    from worker.activities import activity_member
    from worker.dispatch import Dispatcher
    from worker.timers import Timers

    settings = Settings(_env_file=None, activity_rescue_ms=1000)
    s = Scripts(r)
    _claim(s)
    command = {"t": "RunActivity", "id": "7", "kind": "fc", "resource": "acs:fc:::services/s/functions/f", "mode": "RequestComplete"}
    Dispatcher(r, r, settings).dispatch(TAG, [command])
    assert r.llen(settings.activity_queue) == 1
    r.delete(settings.activity_queue)  # the message is lost (a worker killed between pop and ack)
    timers = Timers(r, r, settings)
    assert timers.rescue_activities(0) == 0  # not overdue yet
    far = 10**13
    assert timers.rescue_activities(far) == 1
    message = json.loads(r.lpop(settings.activity_queue))
    assert message["headers"]["task"] == ACTIVITY_TASK
    member = activity_member(TAG, "7")
    assert r.zscore(keys.activities_for(TAG, 16), member) == far + 1000  # armed again, in case this one is lost too
    r.hset(XKEYS[0], "status", "Succeeded")  # the execution ended meanwhile
    assert timers.rescue_activities(far * 2) == 1
    assert r.llen(settings.activity_queue) == 0  # not run again ...
    assert r.zscore(keys.activities_for(TAG, 16), member) is None and not r.hexists(keys.activity_commands_for(TAG, 16), member)  # ... and forgotten



def test_a_call_whose_worker_died_max_times_fails_worker_crashed(r: redis.Redis) -> None:
    """Issue 14: a call begun by workers that died each time is run again until it was begun
    max_activity_crashes times, then its task fails with FnF.WorkerCrashed (a message lost before
    any worker began it is not counted)."""
    from common.settings import Settings
    from worker.activities import WORKER_CRASHED, ActivityRunner, activity_member
    from worker.dispatch import Dispatcher
    from worker.functions import Functions
    from worker.timers import Timers

    settings = Settings(_env_file=None, activity_rescue_ms=1000, max_activity_crashes=2)
    s = Scripts(r)
    _claim(s)
    command = {"t": "RunActivity", "id": "7", "kind": "fc", "resource": "acs:fc:::services/s/functions/f", "mode": "RequestComplete"}
    Dispatcher(r, r, settings).dispatch(TAG, [command])
    member = activity_member(TAG, "7")
    runner = ActivityRunner(r, settings, Functions([], None), lambda tag: None)
    timers = Timers(r, r, settings)
    now = 10**13
    r.delete(settings.activity_queue)
    assert timers.rescue_activities(now) == 1  # lost before any worker began it: not counted
    assert r.llen(settings.activity_queue) == 1 and r.llen(XKEYS[1]) == 1  # published again; the inbox holds only Started
    for death in (1, 2):
        r.delete(settings.activity_queue)
        runner.begin(member)  # a worker begins the call ... and dies (nothing reported)
        assert int(r.hget(keys.activity_starts_for(TAG, 16), member)) == death
        now += 10**6
        assert timers.rescue_activities(now) == 1
        if death < 2:
            assert r.llen(settings.activity_queue) == 1  # run again
    assert r.llen(settings.activity_queue) == 0  # not run a third time ...
    event = json.loads(r.lrange(XKEYS[1], -1, -1)[0])
    assert (event["t"], event["id"], event["error"]) == ("ActivityFailed", "7", WORKER_CRASHED)  # ... its task fails
    assert "died 2 times" in event["cause"]
    assert r.llen(settings.drive_queue) == 1  # and the execution is driven
    assert not r.exists(keys.activities_for(TAG, 16)) and not r.exists(keys.activity_commands_for(TAG, 16)) and not r.exists(keys.activity_starts_for(TAG, 16))


def test_a_worker_does_not_run_a_call_begun_max_times_already(r: redis.Redis) -> None:
    """Should a message of the call reach a worker before the timers fail it (a duplicate queued while
    no worker was up), the worker fails it with FnF.WorkerCrashed instead of running it again."""
    from common.settings import Settings
    from worker.activities import WORKER_CRASHED, ActivityRunner, activity_member
    from worker.dispatch import Dispatcher
    from worker.functions import Functions

    settings = Settings(_env_file=None, activity_rescue_ms=1000, max_activity_crashes=2)
    _claim(Scripts(r))
    command = {"t": "RunActivity", "id": "7", "kind": "fc", "resource": "acs:fc:::services/s/functions/f", "mode": "RequestComplete"}
    Dispatcher(r, r, settings).dispatch(TAG, [command])
    member = activity_member(TAG, "7")
    published: list[str] = []
    runner = ActivityRunner(r, settings, Functions([], None), published.append)
    r.hset(keys.activity_starts_for(TAG, 16), member, 2)  # begun twice, each time its worker died
    assert runner.run(TAG, command) == "ActivityFailed"
    event = json.loads(r.lrange(XKEYS[1], -1, -1)[0])
    assert (event["error"], event["id"]) == (WORKER_CRASHED, "7") and "died 2 times" in event["cause"]  # not FunctionNotFound: not run
    assert published == [TAG]
    assert not r.exists(keys.activities_for(TAG, 16)) and not r.exists(keys.activity_starts_for(TAG, 16))
    assert runner.run(TAG, command) == "Gone"  # another duplicate: nothing more

def test_cancelled_activities_are_never_run_again(r: redis.Redis) -> None:
    from common.settings import Settings
    from worker.activities import activity_member
    from worker.dispatch import Dispatcher

    settings = Settings(_env_file=None)
    d = Dispatcher(r, r, settings)
    d.dispatch(TAG, [{"t": "RunActivity", "id": "9", "kind": "fc", "resource": "x", "mode": "RequestComplete"}])
    assert r.zscore(keys.activities_for(TAG, 16), activity_member(TAG, "9")) is not None
    d.dispatch(TAG, [{"t": "CancelActivity", "id": "9"}])
    assert r.zscore(keys.activities_for(TAG, 16), activity_member(TAG, "9")) is None
    assert not r.hexists(keys.activity_commands_for(TAG, 16), activity_member(TAG, "9"))
