"""Random well-formed flows, answered in random orders: the interpreter's invariants hold.

A flow is drawn as a tree of nodes (pass, succeed, fail, wait, task, choice, parallel, map/foreach)
and rendered in either syntax. A simulated engine then answers whatever is pending in an order
hypothesis picks: activity results or failures, callback submissions and reports, timers, stale
and duplicated deliveries, a stop request, several events per advance(). Invariants:
  - advance() never raises, and the state stays JSON;
  - exactly one terminal event, the last one; the ending decision only cancels; nothing after it;
  - EventIds run from 1 without gaps and every ScheduleEventId points back;
  - no command id is ever issued twice, and the execution never waits for something it did not ask;
  - replaying the same events (one per call, through JSON) gives the same history and state.
"""
from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from common.fdl import parse_definition
from common.interpreter import Limits, advance

NOW = 1_700_000_000_000
LIMITS = Limits(max_history_events=400)
TERMINAL = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped", "ExecutionTimedOut"}
MODES_NEW = ["RequestComplete", "WaitForCustomCallback", "WaitForSystemCallback"]
PATTERNS_OLD = {"RequestComplete": "requestResponse", "WaitForCustomCallback": "waitForCallback", "WaitForSystemCallback": "sync"}

task = st.tuples(st.just("task"), st.integers(0, 2), st.sampled_from(MODES_NEW), st.booleans(), st.booleans(), st.booleans())
leaf = st.one_of(
    task,
    st.just(("pass",)),
    task,
    st.tuples(st.just("wait"), st.sampled_from([0, 1, 5])),
    task,
    st.tuples(st.just("choice"), st.integers(1, 3)),
    st.tuples(st.just("fail"), st.sampled_from(["E1", "E2"])),
    st.just(("succeed",)),
)
scopes = st.recursive(
    st.lists(leaf, min_size=1, max_size=4),
    lambda inner: st.lists(
        st.one_of(leaf, st.tuples(st.just("parallel"), st.lists(inner, min_size=1, max_size=3)), st.tuples(st.just("map"), inner, st.integers(0, 2))),
        min_size=1,
        max_size=4,
    ),
    max_leaves=12,
)


def _trim(nodes: list[Any]) -> list[Any]:
    """Nothing after a fail or succeed: it would be unreachable."""
    out = []
    for node in nodes:
        out.append(node)
        if node[0] in ("fail", "succeed"):
            break
    return out


def render_new(nodes: list[Any], prefix: str = "S") -> dict[str, Any]:
    nodes = _trim(nodes)
    names = [f"{prefix}{i}" for i in range(len(nodes))]
    open_end = nodes[-1][0] not in ("fail", "succeed")
    if open_end:
        names.append(f"{prefix}Z")
    states: list[dict[str, Any]] = []
    for i, node in enumerate(nodes):
        name, nxt = names[i], names[i + 1] if i + 1 < len(names) else None
        kind = node[0]
        state: dict[str, Any] = {"Name": name}
        if kind == "pass":
            state.update(Type="Pass", OutputConstructor={"at": name, "k.$": "$Context.Execution.Input.k"})
        elif kind == "succeed":
            state.update(Type="Succeed")
        elif kind == "fail":
            state.update(Type="Fail", Code=node[1], Detail=f"failed at {name}")
        elif kind == "wait":
            state.update(Type="Wait", Seconds=node[1])
        elif kind == "task":
            _, fn, mode, retry, catch, timeout = node
            state.update(Type="Task", Action="FC:InvokeFunction", TaskMode=mode,
                         Parameters={"resourceArn": f"acs:fc:cn-hangzhou:1:functions/f{fn}", "body": {"from": name}})  # fmt: skip
            if retry:
                state["Retry"] = [{"Errors": ["E1"], "MaxAttempts": 2, "IntervalSeconds": 1, "BackoffRate": 2}]
            if catch:
                state["Catch"] = [{"Errors": ["E2", "FnF.TaskTimeout"], "Next": names[-1]}]
            if timeout:
                state["Timeout"] = 30
        elif kind == "choice":
            target = names[min(i + node[1], len(names) - 1)]
            state.update(Type="Choice", Branches=[{"Condition": "$Context.Execution.Input.k == 1", "Next": target}], Default=nxt)
        elif kind == "parallel":
            state.update(Type="Parallel", Branches=[render_new(b, f"{name}b{j}_") for j, b in enumerate(node[1])])
        elif kind == "map":
            state.update(Type="Map", ItemsPath="$Context.Execution.Input.items", Processor=render_new(node[1], f"{name}m_"))
            if node[2]:
                state["MaxConcurrency"] = node[2]
        if kind not in ("succeed", "fail", "choice"):
            state.update(Next=nxt) if nxt else state.update(End=True)
        states.append(state)
    if open_end:
        states.append({"Type": "Pass", "Name": names[-1], "End": True})
    return {"StartAt": names[0], "States": states}


def render_old(nodes: list[Any], prefix: str = "s") -> list[dict[str, Any]]:
    nodes = _trim(nodes)
    open_end = nodes[-1][0] not in ("fail", "succeed")
    names = [f"{prefix}{i}" for i in range(len(nodes))] + ([f"{prefix}z"] if open_end else [])
    steps: list[dict[str, Any]] = []
    for i, node in enumerate(nodes):
        name = names[i]
        kind = node[0]
        step: dict[str, Any] = {"name": name}
        if kind == "pass":
            step.update(type="pass", outputMappings=[{"target": "at", "source": name}, {"target": "k", "source": "$input.k"}])
        elif kind == "succeed":
            step.update(type="succeed")
        elif kind == "fail":
            step.update(type="fail", error=node[1], cause=f"failed at {name}")
        elif kind == "wait":
            step.update(type="wait", duration=node[1])
        elif kind == "task":
            _, fn, mode, retry, catch, timeout = node
            step.update(type="task", resourceArn=f"acs:fc:::services/s/functions/f{fn}", pattern=PATTERNS_OLD[mode])
            if mode != "RequestComplete":
                step["inputMappings"] = [{"target": "token", "source": "$context.task.token"}]
            if retry:
                step["retry"] = [{"errors": ["E1"], "maxAttempts": 2, "intervalSeconds": 1}]
            if catch:
                step["catch"] = [{"errors": ["E2", "FnF.TaskTimeout"], "goto": names[-1]}]
            if timeout:
                step["timeoutSeconds"] = 30
        elif kind == "choice":
            step.update(type="choice", choices=[{"condition": "$.k == 1", "goto": names[min(i + node[1], len(names) - 1)]}])
        elif kind == "parallel":
            step.update(type="parallel", branches=[{"steps": render_old(b, f"{name}b{j}_")} for j, b in enumerate(node[1])],
                        outputMappings=[{"target": f"{name}_locals", "source": "$local"}])  # fmt: skip
        elif kind == "map":
            step.update(type="foreach", iterationMapping={"collection": "$.items", "item": "it", "index": "ix"}, steps=render_old(node[1], f"{name}m_"))
        steps.append(step)
    if open_end:
        steps.append({"type": "pass", "name": names[-1]})
    return steps


def definition(nodes: list[Any], syntax: str) -> str:
    if syntax == "new":
        return json.dumps({"Type": "StateMachine", "SpecVersion": "v1", **render_new(nodes)})
    return json.dumps({"type": "flow", "version": "v1", "steps": render_old(nodes)})


# ---------------------------------------------------------------- the simulated engine


class Env:
    """What the engine has been asked and not yet answered."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any]]] = []  # (kind, command)
        self.delivered: list[dict[str, Any]] = []
        self.issued: set[str] = set()

    def take(self, commands: list[dict[str, Any]]) -> None:
        for cmd in commands:
            if cmd["t"] in ("RunActivity", "StartTimer"):
                assert cmd["id"] not in self.issued, f"command id {cmd['id']} issued twice"
                self.issued.add(cmd["id"])
                self.pending.append(("activity" if cmd["t"] == "RunActivity" else "timer", cmd))
            elif cmd["t"] == "CancelTimer":
                self.pending = [p for p in self.pending if p[1]["id"] != cmd["id"]]

    def answer(self, data: st.DataObject) -> list[dict[str, Any]]:
        """Events for one pending item, chosen (and how it ends) by hypothesis; sometimes a stale repeat."""
        if self.delivered and data.draw(st.integers(0, 9)) == 0:
            return [data.draw(st.sampled_from(self.delivered))]  # a duplicate or late delivery
        kind, cmd = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        cid = cmd["id"]
        if kind == "timer":
            return [{"t": "TimerFired", "id": cid}]
        outcome = data.draw(st.sampled_from(["ok", "ok", "E1", "E2", "hang"]))
        if outcome == "hang":
            return []  # never answers: only a timeout (if any) or the end releases it
        if cmd["mode"] == "RequestComplete":
            if outcome == "ok":
                return [{"t": "ActivityCompleted", "id": cid, "result": {"r": cid}}]
            return [{"t": "ActivityFailed", "id": cid, "error": outcome, "cause": "drawn"}]
        events = [{"t": "ActivityCompleted", "id": cid, "result": None}]
        if outcome == "ok":
            events.append({"t": "TaskReported", "id": cid, "ok": True, "output": {"reported": cid}})
        else:
            events.append({"t": "TaskReported", "id": cid, "ok": False, "error": outcome, "cause": "reported"})
        if data.draw(st.booleans()):
            events.reverse()  # the report may overtake the submission result
        return events


@settings(max_examples=int(os.environ.get("OPENFNF_PROPERTY_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(scopes, st.sampled_from(["new", "old"]), st.integers(0, 2), st.lists(st.integers(0, 9), min_size=1, max_size=3), st.data())
def test_random_flows_in_random_orders(nodes: list[Any], syntax: str, k: int, items: list[int], data: st.DataObject) -> None:
    flow = parse_definition(definition(nodes, syntax))
    exec_input = {"k": k, "items": items}
    env = Env()
    batches: list[tuple[int, list[dict[str, Any]]]] = []
    history: list[Any] = []
    now, state, ended = NOW, None, None
    queue: list[dict[str, Any]] = [{"t": "Started", "input": exec_input, "name": "e", "flow": "f"}]
    for _ in range(300):
        if not queue:
            if not env.pending:
                break
            queue.extend(env.answer(data))
            if data.draw(st.integers(0, 30)) == 0:
                queue.append({"t": "StopRequested", "error": "Stop", "cause": "drawn"})
            continue
        take = data.draw(st.integers(1, len(queue)))
        batch, queue = queue[:take], queue[take:]
        now += data.draw(st.integers(0, 5000))
        decision = advance(flow, state, batch, now, limits=LIMITS)
        batches.append((now, batch))
        env.delivered.extend(e for e in batch if e["t"] != "Started")
        history.extend(decision.history)
        state = json.loads(json.dumps(decision.state))
        assert state == decision.state
        if ended is not None:
            assert not decision.history and not decision.commands, "something happened after the end"
            continue
        env.take(decision.commands)
        waiting = set(state.get("waits", {}))
        assert waiting <= env.issued, f"waits for {waiting - env.issued}, never asked for"
        if decision.ended:
            ended = decision
            assert {c["t"] for c in decision.commands} <= {"CancelTimer", "CancelActivity"}
            env.pending.clear()
    note_event(f"{syntax}: {history[-1].type if ended else 'still waiting'}, {len(env.issued)} commands")
    if ended is None:
        return  # ran out of steps (a drawn 'hang' with no timeout keeps waiting, which is right)
    assert [e.id for e in history] == list(range(1, len(history) + 1))
    assert all(0 <= e.sched < e.id for e in history)
    assert [e.type for e in history if e.type in TERMINAL] == [history[-1].type]
    # The same events, one per call, give the same history and state.
    replay_state, replay_history = None, []
    for at, batch in batches:
        for event in batch:
            d = advance(flow, replay_state, [event], at, limits=LIMITS)
            replay_history.extend(d.history)
            replay_state = json.loads(json.dumps(d.state))
    assert replay_history == history and replay_state == state
