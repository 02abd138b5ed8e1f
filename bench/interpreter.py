"""Transitions per second of the pure interpreter (advance()), in one process, no I/O.

A transition is one state entered (one StepEntered in the history). Flows:
  pass10-new / pass10-old   a chain of 10 Pass states (old: pass steps with an output mapping)
  choice-map-new            Map over 20 items, each iteration a Choice and one of two Pass states,
                            after a Choice-driven loop of 5 rounds (Pass + Choice each)
  choice-foreach-old        the same shape in the old syntax (foreach, choice with goto)
  task-per-event-new        one Task per iteration of a 10-item Map, its results fed back one per
                            advance() with the state through JSON in between (what the driver does)

    python bench/interpreter.py                # about 2 s per row
    python bench/interpreter.py --seconds 5

The target is 50,000 transitions/s; `x target` is the measured rate over it. Rates are per CPU
second of this process (time.process_time), so other load on the machine does not distort them;
the wall-clock rate is printed beside.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.fdl import FlowDef, parse_definition  # noqa: E402
from common.interpreter import advance  # noqa: E402

TARGET = 50_000
NOW = 1_700_000_000_000

PASS10_NEW = "Type: StateMachine\nSpecVersion: v1\nStartAt: P0\nStates:\n" + "".join(
    f"  - {{Type: Pass, Name: P{i}, {'Next: P' + str(i + 1) if i < 9 else 'End: true'}}}\n" for i in range(10)
)
PASS10_OLD = "version: v1\ntype: flow\nsteps:\n" + "".join(
    f"  - {{type: pass, name: p{i}, outputMappings: [{{target: last, source: p{i}}}]}}\n" for i in range(10)
)
CHOICE_MAP_NEW = """Type: StateMachine
SpecVersion: v1
StartAt: Init
States:
  - Type: Pass
    Name: Init
    OutputConstructor:
      n: 0
      items.$: $Input.items
    Next: Count
  - Type: Pass
    Name: Count
    OutputConstructor:
      n.$: $Input.n + 1
      items.$: $Input.items
    Next: Again
  - Type: Choice
    Name: Again
    Branches:
      - Condition: $Input.n < 5
        Next: Count
    Default: Each
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    Processor:
      StartAt: Kind
      States:
        - Type: Choice
          Name: Kind
          Branches:
            - Condition: $Input % 2 == 0
              Next: Even
          Default: Odd
        - Type: Pass
          Name: Even
          End: true
        - Type: Pass
          Name: Odd
          End: true
    End: true
"""
CHOICE_FOREACH_OLD = """version: v1
type: flow
steps:
  - type: pass
    name: init
    outputMappings:
      - {target: round, source: 0}
  - type: choice
    name: again
    choices:
      - condition: $.round == 0
        goto: first
  - type: pass
    name: first
    outputMappings:
      - {target: round, source: 1}
  - type: foreach
    name: each
    iterationMapping: {collection: $.items, item: it}
    steps:
      - type: choice
        name: kind
        choices:
          - condition: $.it > 10
            goto: big
      - type: pass
        name: small
        end: true
      - type: pass
        name: big
"""
TASK_MAP_NEW = """Type: StateMachine
SpecVersion: v1
StartAt: Each
States:
  - Type: Map
    Name: Each
    ItemsPath: $Input.items
    Processor:
      StartAt: Call
      States:
        - Type: Task
          Name: Call
          Action: FC:InvokeFunction
          Parameters:
            resourceArn: acs:fc:cn-hangzhou:1:functions/f
            body.$: $Input
          End: true
    End: true
"""
ITEMS: dict[str, object] = {"items": list(range(20))}


def transitions(flow: FlowDef, exec_input: dict[str, object]) -> int:
    """States entered by one run (checks that it succeeds)."""
    d = advance(flow, None, [{"t": "Started", "input": exec_input, "name": "e", "flow": "f"}], NOW)
    assert d.status.value == "Succeeded", (d.error, d.cause)
    return sum(1 for e in d.history if e.type == "StepEntered")


def pure_runner(flow: FlowDef, exec_input: dict[str, object]) -> Callable[[], None]:
    started = [{"t": "Started", "input": exec_input, "name": "e", "flow": "f"}]
    return lambda: None if advance(flow, None, started, NOW) else None


def task_runner(flow: FlowDef) -> tuple[Callable[[], None], int]:
    items = {"items": list(range(10))}

    def run() -> None:
        d = advance(flow, None, [{"t": "Started", "input": items, "name": "e", "flow": "f"}], NOW)
        state = json.loads(json.dumps(d.state))
        for cmd in d.commands:
            d = advance(flow, state, [{"t": "ActivityCompleted", "id": cmd["id"], "result": {"ok": 1}}], NOW + 1)
            state = json.loads(json.dumps(d.state))
        assert d.status.value == "Succeeded"

    return run, 1 + 10 * 1  # the Map, and one Task per item


def measure(fn: Callable[[], None], seconds: float) -> tuple[float, float]:
    """Calls per CPU second and per wall-clock second of fn, over about `seconds` of CPU time."""
    fn()  # warm the compiled-expression caches
    count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        count += 20
        cpu = time.process_time() - cpu0
        if cpu >= seconds:
            return count / cpu, count / (time.perf_counter() - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per row")
    args = parser.parse_args()
    rows: list[tuple[str, int, tuple[float, float]]] = []
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("pass10-new", PASS10_NEW, {"k": "v"}),
        ("pass10-old", PASS10_OLD, {"k": "v"}),
        ("choice-map-new", CHOICE_MAP_NEW, ITEMS),
        ("choice-foreach-old", CHOICE_FOREACH_OLD, ITEMS),
    ]
    for name, text, exec_input in cases:
        flow = parse_definition(text)
        rows.append((name, transitions(flow, exec_input), measure(pure_runner(flow, exec_input), args.seconds)))
    run, per_run = task_runner(parse_definition(TASK_MAP_NEW))
    rows.append(("task-per-event-new", per_run, measure(run, args.seconds)))
    print(f"{'flow':<22}{'transitions/run':>16}{'runs/cpu-s':>12}{'transitions/cpu-s':>19}{'x target':>10}{'transitions/wall-s':>20}")  # noqa: T201
    for name, per, (cpu_rate, wall_rate) in rows:
        print(f"{name:<22}{per:>16}{cpu_rate:>12.0f}{per * cpu_rate:>19,.0f}{per * cpu_rate / TARGET:>10.2f}{per * wall_rate:>20,.0f}")  # noqa: T201


if __name__ == "__main__":
    main()
