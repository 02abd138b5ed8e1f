"""Child flows' lineage (issue 14): adopt.lua and the stops a parent's end sends, on a real redis-server."""
from __future__ import annotations

import json

import redis

from common import keys
from common.interpreter import Status, abort
from common.lineage import (
    PARENT_STOPPED,
    TASK_CANCELLED,
    adoption_refused,
    orphan_event,
    orphans,
    queue_stops,
    stop_tree,
    stops_to_publish,
    too_deep,
)
from common.scripts import Scripts

PARENT = keys.execution_tag("flow-p", "parent")
CHILD = keys.execution_tag("flow-c", "child")


def _record(r: redis.Redis, tag: str, status: str) -> None:
    r.hset(keys.execution(tag), mapping={"status": status, "acct": "a1"})


def test_adopt_takes_a_child_only_while_its_task_waits(r: redis.Redis) -> None:
    s = Scripts(r)
    args = {"keys": [keys.execution(PARENT), keys.tasks(PARENT), keys.children(PARENT)], "args": [CHILD, "7"]}
    assert s.adopt(**args) == [-1]  # no such parent
    assert adoption_refused([-1]) == ""  # ... nothing to stop the child for
    _record(r, PARENT, "Running")
    assert s.adopt(**args) == [-2]  # the task does not wait (never did, or was cancelled)
    assert adoption_refused([-2]) == "Running"
    r.hset(keys.tasks(PARENT), "7", "waiting")
    assert s.adopt(**args) == [1]
    assert s.adopt(**args) == [1]  # again: harmless
    assert adoption_refused([1]) == ""
    assert r.hgetall(keys.children(PARENT)) == {CHILD.encode(): b"7"}
    r.delete(keys.children(PARENT))
    for status in ("Succeeded", "Failed", "TimedOut", "Stopped"):
        _record(r, PARENT, status)
        answer = s.adopt(**args)
        assert answer == [0, status.encode()]
        assert adoption_refused(answer) == status
    assert not r.exists(keys.children(PARENT))  # an ended parent adopts nothing


def test_the_stop_event_says_why() -> None:
    stopped = orphan_event("pflow", "p1", "Stopped")
    assert stopped["error"] == PARENT_STOPPED and stopped["cause"] == "The parent execution p1 of flow pflow was stopped."
    failed = orphan_event("pflow", "p1", "Failed")
    assert failed["error"] == TASK_CANCELLED and "p1" in failed["cause"] and "ended Failed" in failed["cause"]
    assert "task was cancelled" in orphan_event("pflow", "p1", "Running")["cause"]


def test_orphans_are_the_children_of_cancelled_tasks() -> None:
    kids = {b"f/c1": b"4", b"f/c2": b"5/2", b"f/c3": b"6"}
    assert orphans(kids, {"4", "5/2"}) == ["f/c1", "f/c2"]
    assert orphans({}, {"4"}) == []


def test_stops_reach_running_children_only(r: redis.Redis) -> None:
    s = Scripts(r)
    done = keys.execution_tag("flow-c", "done")
    _record(r, CHILD, "Running")
    _record(r, done, "Succeeded")
    tags = [CHILD, done, keys.execution_tag("flow-c", "missing")]
    event = orphan_event("parent_flow", "parent", "Stopped")
    results = s.pipeline_sync(lambda pipe: queue_stops(s, pipe, tags, event, 1000, 5000))
    assert stops_to_publish(tags, results) == [CHILD]
    assert [json.loads(e) for e in r.lrange(keys.inbox(CHILD), 0, -1)] == [event]
    assert event["error"] == PARENT_STOPPED and "parent" in event["cause"] and "parent_flow" in event["cause"]
    assert not r.exists(keys.inbox(done))
    # A drive is queued now (the mark): a second stop is appended without publishing again.
    again = s.pipeline_sync(lambda pipe: queue_stops(s, pipe, [CHILD], event, 1001, 5000))
    assert stops_to_publish([CHILD], again) == []


def test_the_nesting_limit_allows_its_own_depth() -> None:
    assert too_deep(32, 32) == ""
    assert "33 deep" in too_deep(33, 32) and "OPENFNF_MAX_NESTING_DEPTH" in too_deep(33, 32)


def test_abort_ends_like_any_failure() -> None:
    state = {"v": 2, "status": "Running", "seq": 7, "ctx": {"name": "e"}, "nf": 3, "frames": {"1": {}},
             "waits": {"4": ["1", "a"], "5/wait": ["2", "t"]}}  # fmt: skip
    decision = abort(state, 123, "FnF.InternalError", "boom")
    assert decision.status == Status.FAILED and decision.ended
    assert decision.state["v"] == 2 and decision.state["seq"] == 8 and decision.state["waits"] == {}
    assert [(e.id, e.sched, e.type, e.detail) for e in decision.history] == [(8, 7, "ExecutionFailed", {"error": "FnF.InternalError", "cause": "boom"})]
    assert sorted((c["t"], c["id"]) for c in decision.commands) == [("CancelActivity", "4"), ("CancelTimer", "5/wait")]
    assert abort(None, 1, "E", "c").state["seq"] == 1  # failed before its first state
    assert abort(decision.state, 124, "E", "c").history == []  # ended already: left as it is


def test_stop_tree_reaches_every_adopted_descendant_at_once(r: redis.Redis) -> None:
    """root -> a -> a1, root -> b (ended): one call stops root, a and a1, each marked `stopping`, and
    a child adopted for a stopping parent afterwards is refused."""
    s = Scripts(r)
    root, a, a1, b = (keys.execution_tag("f", n) for n in ("root", "a", "a1", "b"))
    for tag in (root, a, a1):
        r.hset(keys.execution(tag), mapping={"status": "Running", "flow": "fl"})
    r.hset(keys.execution(b), mapping={"status": "Failed", "flow": "fl"})
    r.hset(keys.children(root), mapping={a: "1", b: "2"})
    r.hset(keys.children(a), mapping={a1: "1"})
    event = orphan_event("top", "t1", "Stopped")
    assert sorted(stop_tree(s, [root], event, 1000, 5000)) == sorted([root, a, a1])
    assert [json.loads(e) for e in r.lrange(keys.inbox(root), 0, -1)] == [event]
    assert [json.loads(e) for e in r.lrange(keys.inbox(a1), 0, -1)] == [orphan_event("fl", "a", "Stopped")]
    assert not r.exists(keys.inbox(b))  # ended: left alone
    assert all(r.hget(keys.execution(t), "stopping") == b"1" for t in (root, a, a1))
    r.hset(keys.tasks(a1), "9", "waiting")
    late = keys.execution_tag("f", "late")
    assert s.adopt(keys=[keys.execution(a1), keys.tasks(a1), keys.children(a1)], args=[late, "9"]) == [0, b"Stopped"]
    assert stop_tree(s, [root], event, 1001, 5000) == []  # queued drives already: nothing to publish again
