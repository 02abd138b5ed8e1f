"""Golden histories: recorded runs of chosen fixtures (events in, history and commands out, end state).

Replaying a recording through advance() must give the same history, commands and state, so a
change of behaviour shows up as a diff of these files. Record again, deliberately, with
    python -m tests.goldens            (all)      python -m tests.goldens NAME...   (some)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests import redrive_scenarios
from tests.flowcases import load_cases, run_case

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RECORDED = [
    "old_task_retry", "old_task_catch_error_mappings", "old_task_timeout", "old_task_callback", "old_foreach_tasks",
    "old_choice_steps", "old_flow_timeout", "old_stop", "new_task_catch", "new_task_submit_failed", "new_parallel_retry",
    "new_map_concurrency", "new_nested_scopes", "new_late_results", "new_stop",
    *redrive_scenarios.SCENARIOS,  # redrive (issue 18): scripted scenarios, not fixtures
]  # fmt: skip


def record(name: str) -> dict[str, Any]:
    """A fixture's run as a JSON-able recording."""
    if name in redrive_scenarios.SCENARIOS:
        return redrive_scenarios.record(name)
    case = next(c for c in load_cases() if c.name == name)
    run = run_case(case)
    return {
        "fixture": name,
        "definition": case.definition,
        "steps": [
            {"now": s.now, "events": s.events, "history": [e.to_json() for e in s.decision.history], "commands": s.decision.commands}
            for s in run.steps
        ],
        "state": run.steps[-1].decision.state,
    }


def path(name: str) -> Path:
    """Where a recording is kept."""
    return GOLDEN_DIR / f"{name}.json"


def main(names: list[str]) -> None:
    """Write the recordings (all of RECORDED when no names are given)."""
    for name in names or RECORDED:
        path(name).write_text(json.dumps(record(name), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"recorded {path(name).relative_to(GOLDEN_DIR.parent.parent)}")  # noqa: T201 - a command-line tool


if __name__ == "__main__":
    main(sys.argv[1:])
