"""Redrive in the pure interpreter (issue 18): a Redriven event reopens a Failed/Stopped/TimedOut execution
and resumes it from what did not succeed; replayed one event at a time or in one batch, it gives the same."""
from __future__ import annotations

import json
from typing import Any

import pytest

from common.fdl import FlowDef, parse_definition
from common.interpreter import Decision, Limits, advance

NOW = 1_700_000_000_000
REDRIVEN = {"t": "Redriven"}

PARALLEL = """
Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: A
        States:
          - Type: Task
            Name: A
            Action: FC:InvokeFunction
            Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/a"}
            End: true
      - StartAt: B
        States:
          - Type: Task
            Name: B
            Action: FC:InvokeFunction
            Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/b"}
            Retry:
              - Errors: [Boom]
                MaxAttempts: 1
                IntervalSeconds: 1
            End: true
"""

MAP = """
Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    End: true
    Processor:
      StartAt: Work
      States:
        - Type: Task
          Name: Work
          Action: FC:InvokeFunction
          Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/work"}
          End: true
"""

TIMED = """
Type: StateMachine
SpecVersion: v1
Timeout: 5
StartAt: First
States:
  - Type: Pass
    Name: First
    Next: Slow
  - Type: Task
    Name: Slow
    Action: FC:InvokeFunction
    Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/slow"}
    End: true
"""


class Driven:
    """An execution fed event by event (state through JSON in between), keeping every event and decision."""

    def __init__(self, definition: str, exec_input: dict[str, Any] | None = None) -> None:
        self.flow: FlowDef = parse_definition(definition)
        self.state: dict[str, Any] | None = None
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.history: list[Any] = []
        self.last: Decision | None = None
        self.feed({"t": "Started", "input": exec_input or {}, "name": "e1", "flow": "f1"})

    def feed(self, event: dict[str, Any], now: int = NOW) -> Decision:
        state = json.loads(json.dumps(self.state)) if self.state is not None else None
        decision = advance(self.flow, state, [event], now)
        self.events.append((now, event))
        self.state = decision.state
        self.history.extend(decision.history)
        self.last = decision
        return decision

    def activities(self, decision: Decision) -> list[dict[str, Any]]:
        return [c for c in decision.commands if c["t"] == "RunActivity"]


def _ok(cid: str, result: Any) -> dict[str, Any]:
    return {"t": "ActivityCompleted", "id": cid, "result": result}


def _fail(cid: str) -> dict[str, Any]:
    return {"t": "ActivityFailed", "id": cid, "error": "Boom", "cause": "it broke"}


def _types(history: list[Any]) -> list[str]:
    return [e.type for e in history]


def test_parallel_redrive_runs_only_the_failed_branch_with_its_retry_budget_reset() -> None:
    run = Driven(PARALLEL)
    first = run.activities(run.last)  # type: ignore[arg-type]
    by_resource = {c["resource"]: c for c in first}
    a, b = by_resource["acs:fc:cn-hangzhou:1:functions/a"], by_resource["acs:fc:cn-hangzhou:1:functions/b"]
    run.feed(_ok(a["id"], '"from-a"'))
    backoff = run.feed(_fail(b["id"]))
    timer = next(c for c in backoff.commands if c["t"] == "StartTimer")
    retry = run.feed({"t": "TimerFired", "id": timer["id"]}, NOW + 1000)
    (b2,) = run.activities(retry)
    assert b2["attempt"] == 2
    ended = run.feed(_fail(b2["id"]), NOW + 1000)
    assert ended.status == "Failed" and ended.error == "Boom"

    redriven = run.feed(REDRIVEN, NOW + 5000)
    assert redriven.status == "Running"
    assert redriven.history[0].type == "ExecutionRedriven" and redriven.history[0].detail == {"redriveCount": 1}
    again = run.activities(redriven)
    assert [c["resource"] for c in again] == ["acs:fc:cn-hangzhou:1:functions/b"]  # A succeeded: not run again
    assert again[0]["attempt"] == 1  # a failed Task starts from its first attempt
    late = run.feed(_ok(b2["id"], '"stale"'), NOW + 5000)  # a late result for the old attempt is dropped
    assert not late.history
    # the Retry budget is whole again: one more failure backs off instead of failing
    backoff = run.feed(_fail(again[0]["id"]), NOW + 5000)
    assert backoff.status == "Running" and [c["t"] for c in backoff.commands] == ["StartTimer"]
    retry = run.feed({"t": "TimerFired", "id": backoff.commands[0]["id"]}, NOW + 6000)
    done = run.feed(_ok(run.activities(retry)[0]["id"], '"from-b"'), NOW + 6000)
    assert done.status == "Succeeded"
    assert json.dumps(done.output).count("from-a") == 1 and "from-b" in json.dumps(done.output)  # A's result kept
    assert "resume" not in done.state
    _replays_the_same(run)


def test_map_redrive_runs_only_the_failed_iterations() -> None:
    run = Driven(MAP, {"items": list(range(50))})
    cmds = run.activities(run.last)  # type: ignore[arg-type]
    assert len(cmds) == 50
    failing = {7, 21, 40}
    ids = [c["id"] for c in cmds]
    for slot, cid in enumerate(ids):
        if slot not in failing:
            run.feed(_ok(cid, json.dumps(slot * 10)))
    ended = run.feed(_fail(ids[7]))
    assert ended.status == "Failed"
    cancelled = {c["id"] for c in ended.commands if c["t"] == "CancelActivity"}
    assert cancelled == {ids[21], ids[40]}
    redriven = run.feed(REDRIVEN)
    again = run.activities(redriven)
    assert len(again) == 3
    done = None
    for cmd in again:
        done = run.feed(_ok(cmd["id"], json.dumps(cmd["input"] * 10 if isinstance(cmd["input"], int) else 0)))
    assert done is not None and done.status == "Succeeded"
    items = done.output["Items"]
    assert len(items) == 50
    assert [items[i]["Body"] for i in sorted(failing)] == [70, 210, 400]
    assert [o["Body"] for i, o in enumerate(items) if i not in failing] == [i * 10 for i in range(50) if i not in failing]
    _replays_the_same(run)


def test_map_with_a_concurrency_limit_starts_the_items_it_never_started_after_a_redrive() -> None:
    run = Driven(MAP.replace("    End: true\n    Processor:", "    End: true\n    MaxConcurrency: 2\n    Processor:"), {"items": [0, 1, 2, 3, 4]})
    first = run.activities(run.last)  # type: ignore[arg-type]
    assert len(first) == 2
    run.feed(_ok(first[0]["id"], "0"))
    (third,) = run.activities(run.last)  # type: ignore[arg-type]
    ended = run.feed(_fail(first[1]["id"]))
    assert ended.status == "Failed"
    redriven = run.feed(REDRIVEN)
    again = run.activities(redriven)
    assert sorted(c["input"] for c in again) == [1, 2]  # the failed item and the cancelled one, within the limit
    pending, rest = list(again), []
    while pending:
        cmd = pending.pop(0)
        if cmd["input"] not in (1, 2):
            rest.append(cmd["input"])
        pending += run.activities(run.feed(_ok(cmd["id"], json.dumps(cmd["input"]))))
    assert sorted(rest) == [3, 4]
    assert run.last is not None and run.last.status == "Succeeded"
    assert [o["Body"] for o in run.last.output["Items"]] == [0, 1, 2, 3, 4]
    _replays_the_same(run)


def test_stopped_execution_redrives_the_task_it_was_in() -> None:
    run = Driven(TIMED)
    (slow,) = run.activities(run.last)  # type: ignore[arg-type]
    stopped = run.feed({"t": "StopRequested", "error": "Halt", "cause": "by hand"})
    assert stopped.status == "Stopped"
    redriven = run.feed(REDRIVEN, NOW + 100)
    (again,) = run.activities(redriven)
    assert again["step"] == "Slow" and again["id"] != slow["id"]
    assert not any(e.step == "First" for e in redriven.history)  # the Pass before it is not run again
    timer = next(c for c in redriven.commands if c["t"] == "StartTimer")
    assert timer == {"t": "StartTimer", "id": "flow/timeout/1", "fire_at": NOW + 100 + 5000}  # the timeout starts afresh
    old_timer = run.feed({"t": "TimerFired", "id": "flow/timeout"}, NOW + 5000)  # the first run's timer: dropped
    assert old_timer.status == "Running" and not old_timer.history
    done = run.feed(_ok(again["id"], "{}"), NOW + 200)
    assert done.status == "Succeeded"
    _replays_the_same(run)


def test_timed_out_execution_redrives_and_can_time_out_again() -> None:
    run = Driven(TIMED)
    timed_out = run.feed({"t": "TimerFired", "id": "flow/timeout"}, NOW + 5000)
    assert timed_out.status == "TimedOut"
    redriven = run.feed(REDRIVEN, NOW + 6000)
    assert [c["t"] for c in redriven.commands] == ["StartTimer", "RunActivity"]
    again = run.feed({"t": "TimerFired", "id": "flow/timeout/1"}, NOW + 11000)
    assert again.status == "TimedOut"
    second = run.feed({"t": "Redriven", "n": 7}, NOW + 12000)  # the count reopen.lua keeps in the record wins
    assert second.history[0].detail == {"redriveCount": 7} and second.state["redrives"] == 7
    assert any(c["id"] == "flow/timeout/7" for c in second.commands)
    _replays_the_same(run)


@pytest.mark.parametrize("status", ["Succeeded", "Running"])
def test_redriven_is_dropped_unless_the_execution_failed_stopped_or_timed_out(status: str) -> None:
    run = Driven(TIMED)
    (slow,) = run.activities(run.last)  # type: ignore[arg-type]
    if status == "Succeeded":
        run.feed(_ok(slow["id"], "{}"))
    before = run.state
    decision = run.feed(REDRIVEN)
    assert decision.status == status and not decision.history and not decision.commands
    assert decision.state == before


def test_a_caught_failure_leaves_no_stale_frames_to_resume() -> None:
    flow = """
Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    Next: After
    Catch:
      - Errors: [FnF.ALL]
        Next: Broken
    Branches:
      - StartAt: A
        States:
          - {Type: Task, Name: A, Action: FC:InvokeFunction, Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/a"}, End: true}
  - {Type: Pass, Name: After, End: true}
  - {Type: Fail, Name: Broken, Code: Caught}
"""
    run = Driven(flow)
    (a,) = run.activities(run.last)  # type: ignore[arg-type]
    ended = run.feed(_fail(a["id"]))
    assert ended.status == "Failed" and ended.error == "Caught"
    assert list(ended.state["resume"]["frames"]) == ["1"]  # only the root, at the Fail state
    again = run.feed(REDRIVEN)
    assert again.status == "Failed" and again.error == "Caught"  # the Fail state fails again
    assert _types(again.history)[0] == "ExecutionRedriven"


def _replays_the_same(run: Driven) -> None:
    """The recorded events in one advance() give the same state and history as one at a time."""
    state = None
    history: list[Any] = []
    flow = run.flow
    # batch by timestamp (advance takes one `now`); event by event is the reference
    groups: list[tuple[int, list[dict[str, Any]]]] = []
    for now, event in run.events:
        if groups and groups[-1][0] == now:
            groups[-1][1].append(event)
        else:
            groups.append((now, [event]))
    for now, events in groups:
        decision = advance(flow, state, events, now)
        state = json.loads(json.dumps(decision.state))
        history.extend(decision.history)
    assert state == json.loads(json.dumps(run.state))
    assert [e.to_json() for e in history] == [e.to_json() for e in run.history]


def test_the_console_overlay_reads_a_redriven_history() -> None:
    from common.graph import build_graph
    from common.overlay import StateStatus, read_history

    run = Driven(TIMED)
    (slow,) = run.activities(run.last)  # type: ignore[arg-type]
    run.feed({"t": "StopRequested", "error": "Halt", "cause": "by hand"})
    stopped = read_history(run.flow, build_graph(run.flow), run.history)
    assert stopped.end_type == "ExecutionStopped"
    redriven = run.feed(REDRIVEN, NOW + 100)
    reopened = read_history(run.flow, build_graph(run.flow), run.history)
    assert reopened.ended is None and reopened.end_type == ""  # running again
    (again,) = run.activities(redriven)
    run.feed(_ok(again["id"], "{}"), NOW + 200)
    done = read_history(run.flow, build_graph(run.flow), run.history)
    assert done.end_type == "ExecutionSucceeded"
    slow_node = "n2"  # the graph numbers the nodes: First n1, Slow n2
    assert done.states[slow_node].status == StateStatus.SUCCEEDED and len(done.states[slow_node].visits) == 2


def _not_succeeded_cases() -> list[Any]:
    from tests.flowcases import load_cases

    return [c for c in load_cases() if c.expect.get("status") in ("Failed", "Stopped", "TimedOut")]


@pytest.mark.parametrize("case", _not_succeeded_cases(), ids=lambda c: c.name)
def test_every_fixture_that_does_not_succeed_can_be_redriven(case: Any) -> None:
    """Over every fixture flow that ends Failed, Stopped or TimedOut: a Redriven event reopens it, and
    with the same scripted answers it runs to an end again (or waits on a call that never answers)."""
    import heapq

    from tests.flowcases import run_case, scripted

    first = run_case(case)
    flow = parse_definition(case.definition)
    state = json.loads(json.dumps(first.final.state))
    clock = first.clock + 1000
    decision = advance(flow, state, [REDRIVEN], clock)
    if state["seq"] + 2 >= Limits().max_history_events:  # a full history: reopen.lua refuses; the event changes nothing
        assert not decision.history and decision.state == state
        return
    assert decision.history[0].type == "ExecutionRedriven" and decision.history[0].sched == first.final.state["seq"]
    assert decision.history[0].id == first.final.state["seq"] + 1
    respond = scripted(case.activities)
    queue: list[tuple[int, int, dict[str, Any]]] = []
    seq = 0
    for _ in range(2000):
        for cmd in decision.commands:
            if cmd["t"] == "RunActivity":
                for when, answer in respond(cmd, clock):
                    seq += 1
                    heapq.heappush(queue, (when, seq, answer))
            elif cmd["t"] == "StartTimer":
                seq += 1
                heapq.heappush(queue, (max(int(cmd["fire_at"]), clock), seq, {"t": "TimerFired", "id": cmd["id"]}))
        if decision.ended or not queue:
            break
        at, _, event = heapq.heappop(queue)
        clock = max(clock, at)
        decision = advance(flow, json.loads(json.dumps(decision.state)), [event], clock)
    else:
        raise AssertionError("no end after 2000 decisions")
    assert decision.ended or decision.state["waits"], "neither ended nor waiting: stuck"
    if decision.ended and decision.status != "Succeeded":
        assert "resume" in decision.state or not decision.state.get("frames")


NESTED = """
Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: Each
        States:
          - Type: Map
            Name: Each
            ItemsPath: $Input.items
            End: true
            Processor:
              StartAt: Work
              States:
                - {Type: Task, Name: Work, Action: FC:InvokeFunction, Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/work"}, End: true}
      - StartAt: Other
        States:
          - {Type: Task, Name: Other, Action: FC:InvokeFunction, Parameters: {resourceArn: "acs:fc:cn-hangzhou:1:functions/other"}, End: true}
"""


def test_a_map_inside_a_parallel_resumes_only_its_unfinished_iterations() -> None:
    run = Driven(NESTED, {"items": [10, 11, 12]})
    cmds = run.activities(run.last)  # type: ignore[arg-type]
    work = {c["input"]: c for c in cmds if c["resource"].endswith("/work")}
    (other,) = [c for c in cmds if c["resource"].endswith("/other")]
    run.feed(_ok(other["id"], '"other"'))
    run.feed(_ok(work[10]["id"], "100"))
    ended = run.feed(_fail(work[11]["id"]))
    assert ended.status == "Failed" and {c["id"] for c in ended.commands if c["t"] == "CancelActivity"} == {work[12]["id"]}
    redriven = run.feed(REDRIVEN)
    again = {c["input"]: c for c in run.activities(redriven)}
    assert sorted(again) == [11, 12]  # not item 10, not the other branch
    run.feed(_ok(again[11]["id"], "110"))
    done = run.feed(_ok(again[12]["id"], "120"))
    assert done.status == "Succeeded"
    text = json.dumps(done.output)
    assert all(v in text for v in ('"other"', "100", "110", "120"))
    _replays_the_same(run)


def test_an_execution_that_abort_ended_redrives_where_it_was() -> None:
    from common.interpreter import abort

    run = Driven(TIMED)
    (slow,) = run.activities(run.last)  # type: ignore[arg-type]
    ended = abort(run.state, NOW + 10, "FnF.InternalError", "the engine failed on it")
    assert ended.status == "Failed" and {"t": "CancelActivity", "id": slow["id"]} in ended.commands
    run.state = json.loads(json.dumps(ended.state))
    redriven = run.feed(REDRIVEN, NOW + 20)
    assert [c["resource"] for c in run.activities(redriven)] == ["acs:fc:cn-hangzhou:1:functions/slow"]  # not First again
    assert "PassStarted" not in str(_types(redriven.history)) and _types(redriven.history)[0] == "ExecutionRedriven"
