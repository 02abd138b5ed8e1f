"""Rows of the result table: a figure, the peer's and the bare limit's beside it, the ratios, the target."""
from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measured figure. `higher` says whether more is better (rates) or less (latency, bytes)."""

    scenario: str
    measure: str
    unit: str
    ours: float | None
    peer: float | None = None
    bare: float | None = None
    bare_name: str = ""
    higher: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""
    met_detail: str = ""  # which parts of a target with several parts hold

    def judge(self, parts: dict[str, bool]) -> None:
        """Met when every part of the target holds; the cell says which parts do."""
        self.met = all(parts.values())
        self.met_detail = "; ".join(f"{name}: {'yes' if held else 'no'}" for name, held in parts.items())


@dataclass
class Report:
    """Every row of a run, and the notes printed under the table."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        """Append a row (and return it, for targets set afterwards)."""
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        """A line under the table."""
        self.notes.append(text)


def fmt(value: float | None, unit: str = "") -> str:
    """A figure with sensible precision and its unit."""
    if value is None:
        return "–"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def vs_peer(row: Row) -> str:
    """How many times better than the peer (rates: ours/peer; latency, bytes: peer/ours)."""
    if row.ours is None or row.peer is None or row.ours <= 0 or row.peer <= 0:
        return "–"
    factor = row.ours / row.peer if row.higher else row.peer / row.ours
    return f"{factor:,.1f}x" if factor >= 1 else f"{factor:.2f}x"


def vs_bare(row: Row) -> str:
    """Share of the bare limit reached (rates), or how many times the bare figure (latency)."""
    if row.ours is None or row.bare is None or row.bare <= 0 or row.ours <= 0:
        return "–"
    if row.higher:
        return f"{100 * row.ours / row.bare:.0f}% of {row.bare_name}"
    return f"{row.ours / row.bare:.1f}x {row.bare_name}"


def render(report: Report, header: list[str]) -> str:
    """The Markdown document: header lines, the table, the notes."""
    lines = [*header, ""]
    lines.append("| scenario | measure | OpenFnF | peer (moto) | bare limit | vs peer | vs bare | target | met |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for row in report.rows:
        bare = f"{fmt(row.bare, row.unit)} ({row.bare_name})" if row.bare is not None else "–"
        met = "–" if row.met is None else ("**met**" if row.met else "**not met**")
        if row.met_detail:
            met += f" ({row.met_detail})"
        measure = row.measure + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.scenario} | {measure} | {fmt(row.ours, row.unit)} | {fmt(row.peer, row.unit)} | {bare} "
            f"| {vs_peer(row)} | {vs_bare(row)} | {row.target or '–'} | {met} |"
        )
    if report.notes:
        lines.append("")
        lines.extend(f"- {n}" for n in report.notes)
    return "\n".join(lines) + "\n"


def chosen(value: str, allowed: Iterable[str], parser: argparse.ArgumentParser, what: str) -> list[str]:
    """The comma-separated names of an --only option, each one of `allowed` (else the parser's usage error)."""
    names, known = [v.strip() for v in value.split(",") if v.strip()], list(allowed)
    unknown = [v for v in names if v not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown}; choose from {known}")
    return names
