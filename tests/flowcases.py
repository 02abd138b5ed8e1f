"""The flow cases of tests/fixtures/flows/*.yaml, and a simulated engine that runs them through advance().

A fixture file holds:
    description: what it shows
    definition: the flow (either syntax)
    input: the execution input (default {})
    engine: [activities, timers]   what the flow needs besides the interpreter (absent: nothing; such
                                   flows also run end to end through the service today)
    activities:                    scripted results, by resource (ARN / Action) or `step:<name>`;
      <key>: response | [response, ...]   one response per call in order, the last one repeating;
        response: {result: any} | {error: E, cause: C} | {report: {output: any} | {error: E, cause: C}}
                  | {hang: true}; optional `after: seconds` (simulated time until the answer) and
                  `fill: {key, bytes}` (adds a string of that many bytes to the result: big data, small file)
    stop_at: seconds               StopRequested {error: Stopped.ByTest} at that simulated time
    simulated_clock: true          its absolute times only make sense on the simulated clock (NOW)
    expect: {status, output, error, cause, history: [[type, step], ...], commands: [...], time: seconds}

simulate() plays the engine: RunActivity gets the scripted answer (in callback modes an
ActivityCompleted "submitted", then the report as TaskReported), StartTimer fires at its time
on a simulated clock, CancelTimer removes a pending timer. Each event goes through its own
advance() call, with the state round-tripped through JSON in between, and events still queued
after the end are fed too (they must change nothing).
"""
from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.fdl import FlowDef, parse_definition
from common.interpreter import Decision, HistoryEvent, Limits, advance

FLOWS_DIR = Path(__file__).resolve().parent / "fixtures" / "flows"
NOW = 1_700_000_000_000  # the simulated clock starts here (ms)
EXECUTION = "exec1"

Responder = Callable[[dict[str, Any], int], list[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class FlowCase:
    """One fixture file."""

    name: str
    description: str
    definition: str
    input: dict[str, Any]
    expect: dict[str, Any]
    engine: frozenset[str] = frozenset()
    activities: dict[str, Any] = field(default_factory=dict)
    stop_at: float | None = None
    simulated_clock: bool = False

    @property
    def flow_name(self) -> str:
        """The flow's name: the definition's own name if it has one, else the file name."""
        doc = yaml.safe_load(self.definition)
        return str(doc.get("Name") or doc.get("name") or self.name)

    @property
    def pure(self) -> bool:
        """Whether the interpreter alone runs it (no activities, no timers)."""
        return not self.engine


def load_cases() -> list[FlowCase]:
    """Every flow case, sorted by file name."""
    cases = []
    for path in sorted(FLOWS_DIR.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path.name} is not valid YAML: {exc}") from None
        engine = doc.get("engine") or []
        cases.append(
            FlowCase(
                name=path.stem,
                description=doc.get("description", ""),
                definition=doc["definition"],
                input=doc.get("input") or {},
                expect=doc["expect"],
                engine=frozenset([engine] if isinstance(engine, str) else engine),
                activities=doc.get("activities") or {},
                stop_at=doc.get("stop_at"),
                simulated_clock=bool(doc.get("simulated_clock")),
            )
        )
    return cases


@dataclass
class Step:
    """One advance() call of a simulation."""

    now: int
    events: list[dict[str, Any]]
    decision: Decision


@dataclass
class Transcript:
    """Everything a simulation did."""

    steps: list[Step]
    history: list[HistoryEvent]
    final: Decision
    commands: list[dict[str, Any]]
    clock: int

    @property
    def ended(self) -> Decision:
        """The decision that ended the execution."""
        return next(s.decision for s in self.steps if s.decision.ended)


def scripted(activities: dict[str, Any]) -> Responder:
    """A responder answering RunActivity commands from a fixture's `activities:` scripts."""
    calls: dict[str, int] = {}

    def respond(cmd: dict[str, Any], now: int) -> list[tuple[int, dict[str, Any]]]:
        key = f"step:{cmd['step']}" if f"step:{cmd['step']}" in activities else cmd["resource"]
        if key not in activities:
            raise AssertionError(f"no scripted answer for step {cmd['step']} (resource {cmd['resource']})")
        script = activities[key]
        script = script if isinstance(script, list) else [script]
        n = calls.get(key, 0)
        calls[key] = n + 1
        answer = script[min(n, len(script) - 1)]
        at = now + int(float(answer.get("after", 0)) * 1000)
        cid = cmd["id"]
        if answer.get("hang"):
            return []
        callback = cmd["mode"] != "RequestComplete"
        if "error" in answer:
            return [(at, {"t": "ActivityFailed", "id": cid, "error": answer["error"], "cause": answer.get("cause", "")})]
        result = answer.get("result")
        if "fill" in answer:
            result = {**(result or {}), answer["fill"]["key"]: "x" * int(answer["fill"]["bytes"])}
        if callback:
            out = [(at, {"t": "ActivityCompleted", "id": cid, "result": result})]
            report = answer.get("report")
            if report is not None:
                if "error" in report:
                    event = {"t": "TaskReported", "id": cid, "ok": False, "error": report["error"], "cause": report.get("cause", "")}
                else:
                    event = {"t": "TaskReported", "id": cid, "ok": True, "output": report.get("output")}
                out.append((at + int(float(report.get("after", 0)) * 1000), event))
            return out
        return [(at, {"t": "ActivityCompleted", "id": cid, "result": result})]

    return respond


def simulate(
    flow: FlowDef,
    exec_input: dict[str, Any],
    respond: Responder,
    *,
    flow_name: str = "flow1",
    stop_at: float | None = None,
    limits: Limits | None = None,
    max_steps: int = 10_000,
    roundtrip: bool = True,
    duplicates: bool = False,
) -> Transcript:
    """Run an execution to its end on a simulated clock, answering its commands with `respond`.

    roundtrip: pass the state through JSON between calls. duplicates: deliver every event twice
    (the second delivery must change nothing).
    """
    kwargs: dict[str, Any] = {} if limits is None else {"limits": limits}
    queue: list[tuple[int, int, dict[str, Any]]] = []
    seq = 0
    cancelled: set[str] = set()
    steps: list[Step] = []
    history: list[HistoryEvent] = []
    commands: list[dict[str, Any]] = []
    state: dict[str, Any] | None = None
    clock = NOW

    def push(at: int, event: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, event))

    push(NOW, {"t": "Started", "input": exec_input, "name": EXECUTION, "flow": flow_name})
    if stop_at is not None:
        push(NOW + int(stop_at * 1000), {"t": "StopRequested", "error": "Stopped.ByTest", "cause": "stop_at in the fixture"})
    final: Decision | None = None
    while queue:
        if len(steps) >= max_steps:
            raise AssertionError(f"the execution did not end within {max_steps} decisions")
        at, _, event = heapq.heappop(queue)
        if event["t"] == "TimerFired" and event["id"] in cancelled:
            continue
        clock = max(clock, at)
        if roundtrip and state is not None:
            state = json.loads(json.dumps(state))
        decision = advance(flow, state, [event], clock, **kwargs)
        steps.append(Step(clock, [event], decision))
        if duplicates:
            again = advance(flow, decision.state, [event], clock, **kwargs)
            assert not again.history and not again.commands and again.state == decision.state, f"a second {event} changed something"
        history.extend(decision.history)
        if final is not None:  # already ended: late events change nothing
            assert not decision.history and not decision.commands and decision.state == final.state, event
            continue
        state = decision.state
        for cmd in decision.commands:
            commands.append(cmd)
            if cmd["t"] == "RunActivity":
                for when, answer in respond(cmd, clock):
                    push(when, answer)
            elif cmd["t"] == "StartTimer":
                cancelled.discard(cmd["id"])
                push(max(int(cmd["fire_at"]), clock), {"t": "TimerFired", "id": cmd["id"]})
            elif cmd["t"] == "CancelTimer":
                cancelled.add(cmd["id"])
        if decision.ended:
            final = decision
    if final is None:
        pending = state.get("waits") if state else None
        raise AssertionError(f"the execution is stuck: nothing left to answer, still waiting for {pending}")
    return Transcript(steps=steps, history=history, final=final, commands=commands, clock=clock)


def run_case(case: FlowCase, **kwargs: Any) -> Transcript:
    """Simulate a fixture with its scripted activities and stop time."""
    flow = parse_definition(case.definition)
    return simulate(flow, case.input, scripted(case.activities), flow_name=case.flow_name, stop_at=case.stop_at, **kwargs)
