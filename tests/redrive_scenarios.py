"""Redrive scenarios (issue 18) recorded as golden histories (tests/goldens.py, tests/golden/redrive_*.json).

Each scenario feeds an execution event by event through advance(), ends it (Failed, Stopped,
TimedOut), redrives it with a `Redriven` event and runs it to its end; the recording has the same
shape as a fixture's, so tests/unit/test_golden_histories.py replays it like the rest.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from common.fdl import parse_definition
from common.interpreter import advance

NOW = 1_700_000_000_000
ARN = "acs:fc:cn-hangzhou:1:functions/{}"

PARALLEL = f"""Type: StateMachine
SpecVersion: v1
StartAt: Both
States:
  - Type: Parallel
    Name: Both
    End: true
    Branches:
      - StartAt: A
        States:
          - {{Type: Task, Name: A, Action: FC:InvokeFunction, Parameters: {{resourceArn: "{ARN.format("a")}"}}, End: true}}
      - StartAt: B
        States:
          - Type: Task
            Name: B
            Action: FC:InvokeFunction
            Parameters: {{resourceArn: "{ARN.format("b")}"}}
            Retry: [{{Errors: [Boom], MaxAttempts: 1, IntervalSeconds: 1}}]
            End: true
"""

MAP = f"""Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    MaxConcurrency: 2
    End: true
    Processor:
      StartAt: Work
      States:
        - {{Type: Task, Name: Work, Action: FC:InvokeFunction, Parameters: {{resourceArn: "{ARN.format("work")}"}}, End: true}}
"""

TIMED = f"""Type: StateMachine
SpecVersion: v1
Timeout: 5
StartAt: First
States:
  - {{Type: Pass, Name: First, Next: Slow}}
  - {{Type: Task, Name: Slow, Action: FC:InvokeFunction, Parameters: {{resourceArn: "{ARN.format("slow")}"}}, End: true}}
"""


class Recorder:
    """Feeds events one advance() at a time (state through JSON) and records every step."""

    def __init__(self, definition: str, exec_input: dict[str, Any] | None = None) -> None:
        self.definition = definition
        self.flow = parse_definition(definition)
        self.state: dict[str, Any] | None = None
        self.steps: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # RunActivity commands not answered yet
        self.feed({"t": "Started", "input": exec_input or {}, "name": "e1", "flow": "f1"})

    def feed(self, event: dict[str, Any], now: int = NOW) -> Any:
        decision = advance(self.flow, self.state, [event], now)
        self.state = json.loads(json.dumps(decision.state))
        self.steps.append({"now": now, "events": [event], "history": [e.to_json() for e in decision.history], "commands": decision.commands})
        self.pending += [c for c in decision.commands if c["t"] == "RunActivity"]
        return decision

    def take(self, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first pending activity that matches."""
        cmd = next(c for c in self.pending if where(c))
        self.pending.remove(cmd)
        return cmd

    def recording(self, name: str) -> dict[str, Any]:
        return {"fixture": name, "definition": self.definition, "steps": self.steps, "state": self.state}


def _ok(cmd: dict[str, Any], result: Any) -> dict[str, Any]:
    return {"t": "ActivityCompleted", "id": cmd["id"], "result": json.dumps(result)}


def _boom(cmd: dict[str, Any]) -> dict[str, Any]:
    return {"t": "ActivityFailed", "id": cmd["id"], "error": "Boom", "cause": "it broke"}


def parallel() -> Recorder:
    """Branch A succeeds, B fails past its retry; redriven, only B runs (from attempt 1) and succeeds."""
    rec = Recorder(PARALLEL)
    rec.feed(_ok(rec.take(lambda c: c["resource"].endswith("/a")), "from-a"))
    backoff = rec.feed(_boom(rec.take(lambda c: c["resource"].endswith("/b"))))
    rec.feed({"t": "TimerFired", "id": backoff.commands[0]["id"]}, NOW + 1000)
    rec.feed(_boom(rec.take(lambda c: True)), NOW + 1000)
    rec.feed({"t": "Redriven"}, NOW + 5000)
    rec.feed(_ok(rec.take(lambda c: c["resource"].endswith("/b")), "from-b"), NOW + 6000)
    return rec


def map_concurrency() -> Recorder:
    """MaxConcurrency 2 over 5 items: item 1 fails while item 2 runs; redriven, 1 and 2 run, then 3 and 4 start."""
    rec = Recorder(MAP, {"items": [0, 1, 2, 3, 4]})
    rec.feed(_ok(rec.take(lambda c: c["input"] == 0), 0))
    rec.feed(_boom(rec.take(lambda c: c["input"] == 1)))
    rec.pending.clear()  # the cancelled item 2
    rec.feed({"t": "Redriven"}, NOW + 100)
    while rec.pending:
        cmd = rec.pending.pop(0)
        rec.feed(_ok(cmd, cmd["input"]), NOW + 200)
    return rec


def stop_then_timeout() -> Recorder:
    """Stopped in Slow; redriven, the flow timeout starts afresh and fires; redriven again, it succeeds."""
    rec = Recorder(TIMED)
    rec.feed({"t": "StopRequested", "error": "Halt", "cause": "by hand"})
    rec.pending.clear()
    rec.feed({"t": "Redriven"}, NOW + 100)
    rec.feed({"t": "TimerFired", "id": "flow/timeout"}, NOW + 5000)  # the first run's timer: dropped
    rec.feed({"t": "TimerFired", "id": "flow/timeout/1"}, NOW + 5100)
    rec.pending.clear()
    rec.feed({"t": "Redriven"}, NOW + 6000)
    rec.feed(_ok(rec.take(lambda c: True), {}), NOW + 6100)
    return rec


SCENARIOS: dict[str, Callable[[], Recorder]] = {
    "redrive_parallel": parallel,
    "redrive_map_concurrency": map_concurrency,
    "redrive_stop_then_timeout": stop_then_timeout,
}


def record(name: str) -> dict[str, Any]:
    """A scenario's run as a golden recording."""
    return SCENARIOS[name]().recording(name)
