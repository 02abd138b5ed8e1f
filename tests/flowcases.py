"""The flow cases of tests/fixtures/flows/*.yaml: definition, input, expected end and history."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLOWS_DIR = Path(__file__).resolve().parent / "fixtures" / "flows"


@dataclass(frozen=True)
class FlowCase:
    """One fixture file."""

    name: str
    description: str
    definition: str
    input: dict[str, Any]
    expect: dict[str, Any]


def load_cases() -> list[FlowCase]:
    """Every flow case, sorted by file name."""
    cases = []
    for path in sorted(FLOWS_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        cases.append(
            FlowCase(path.stem, doc.get("description", ""), doc["definition"], doc.get("input") or {}, doc["expect"])
        )
    return cases
