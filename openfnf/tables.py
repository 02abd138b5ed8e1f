"""The terminal client's human output: aligned tables, coloured statuses, a readable event history."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import click

STATUS_COLOURS = {
    "Succeeded": "green",
    "Running": "cyan",
    "Starting": "cyan",
    "Failed": "red",
    "TimedOut": "red",
    "Stopped": "yellow",
}
ENDED = frozenset({"Succeeded", "Failed", "TimedOut", "Stopped"})
DETAIL_WIDTH = 72  # characters of an event's detail shown in `executions history`


def colour_wanted() -> bool | None:
    """False under NO_COLOR (https://no-color.org); else None: click colours only a terminal."""
    return False if os.environ.get("NO_COLOR") else None


def echo(text: str = "", err: bool = False) -> None:
    """click.echo with the NO_COLOR rule (styles are stripped when the stream is not a terminal)."""
    click.echo(text, err=err, color=colour_wanted())


def status_colour(text: str) -> str | None:
    """The colour of an execution status, or of an event type by what it says (…Failed red, …Succeeded green)."""
    if text in STATUS_COLOURS:
        return STATUS_COLOURS[text]
    for suffix in ("Failed", "TimedOut", "SubmitFailed"):
        if text.endswith(suffix):
            return "red"
    if text.endswith("Succeeded"):
        return "green"
    if text.endswith("Stopped"):
        return "yellow"
    return None


def styled_status(text: str) -> str:
    """The status in its colour (bold when it is an end)."""
    colour = status_colour(text)
    return click.style(text, fg=colour, bold=text in ENDED) if colour else text


Cell = str | tuple[str, str | None]  # plain text, or (text, colour)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Rows under their headers, columns padded to their widest cell (padding measured before colouring)."""
    plain = [[c if isinstance(c, str) else c[0] for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in plain)]) for i, h in enumerate(headers)]
    last = len(headers) - 1
    lines = ["  ".join(click.style(h.ljust(w) if i < last else h, bold=True) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text, colour = (cell, None) if isinstance(cell, str) else cell
            padded = text.ljust(widths[i]) if i < len(row) - 1 else text
            cells.append(click.style(padded, fg=colour) if colour else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """`Label:  value` lines, labels aligned; multi-line values indented under their label."""
    width = max(len(label) for label, _ in pairs) + 2
    lines = []
    for label, value in pairs:
        first, *rest = (value or "-").split("\n")
        lines.append(f"{(label + ':').ljust(width)}{first}")
        lines.extend(" " * width + line for line in rest)
    return "\n".join(lines)


def pretty_json(text: str | None) -> str:
    """JSON text indented for reading (as given when it is not JSON; '-' when empty)."""
    if not text:
        return "-"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def compact(value: Any) -> str:
    """One-line JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def shorten(text: str, width: int = DETAIL_WIDTH) -> str:
    """text cut to width characters, ending in an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def event_detail(event_type: str, detail: str | None, width: int | None = DETAIL_WIDTH) -> str:
    """The short detail of a history event: its error and cause, else what it carries (output, input, resource, attempt).

    width=None: in full (task tokens in inputs stay whole).
    """

    def cut(text: str) -> str:
        return " ".join(text.split()) if width is None else shorten(text, width)

    if not detail:
        return ""
    try:
        data = json.loads(detail)
    except ValueError:
        return cut(detail)
    if not isinstance(data, dict):
        return cut(compact(data))
    if "error" in data:
        cause = data.get("cause")
        return cut(f"{data['error']}: {compact(cause)}" if cause else str(data["error"]))
    parts = []
    if "index" in data:
        parts.append(f"#{data['index']}")
    if event_type == "TaskScheduled" and "resource" in data:
        parts.append(str(data["resource"]))
    if isinstance(data.get("attempt"), int) and data["attempt"] > 1:
        parts.append(f"attempt {data['attempt']}")
    for key in ("output", "input", "local"):
        if key in data and event_type != "TaskScheduled":
            parts.append(f"{key} {compact(data[key])}")
            break
    return cut(" ".join(parts))


def history(events: Sequence[Mapping[str, Any]], width: int | None = DETAIL_WIDTH) -> str:
    """The event list of `executions history`: id, time, type, state, short detail (in full with width=None)."""
    days = {str(e.get("Time", ""))[:10] for e in events}
    one_day = len(days) == 1
    rows: list[Sequence[Cell]] = []
    for e in events:
        when = str(e.get("Time", ""))
        shown = when[11:].rstrip("Z") if one_day and len(when) > 11 else when
        kind = str(e.get("Type", ""))
        rows.append([str(e.get("EventId", "")), shown, (kind, status_colour(kind)), str(e.get("StepName") or "-"), event_detail(kind, e.get("EventDetail"), width)])
    out = table(["ID", "TIME" + (f" ({days.pop()} UTC)" if one_day else ""), "TYPE", "STATE", "DETAIL"], rows)
    return out if events else out + "\n(no events)"


def flows_table(flows: Sequence[Mapping[str, Any]]) -> str:
    """ListFlows as a table."""
    rows: list[Sequence[Cell]] = [
        [str(f.get("Name", "")), str(f.get("Type", "")), str(f.get("ExecutionMode") or "Standard"), str(f.get("LastModifiedTime", "")), shorten(str(f.get("Description") or ""), 40)]
        for f in flows
    ]
    return table(["NAME", "TYPE", "MODE", "LAST MODIFIED", "DESCRIPTION"], rows) if flows else "no flows"


def executions_table(executions: Sequence[Mapping[str, Any]]) -> str:
    """ListExecutions as a table."""
    rows: list[Sequence[Cell]] = [
        [str(e.get("Name", "")), (str(e.get("Status", "")), status_colour(str(e.get("Status", "")))), str(e.get("StartedTime") or "-"), str(e.get("StoppedTime") or "-")]
        for e in executions
    ]
    return table(["NAME", "STATUS", "STARTED", "STOPPED"], rows) if executions else "no executions"


def flow_fields(flow: Mapping[str, Any]) -> str:
    """DescribeFlow for reading: its fields, then the definition."""
    return fields([
        ("Name", str(flow.get("Name", ""))),
        ("Id", str(flow.get("Id") or "-")),
        ("Type", str(flow.get("Type") or "-")),
        ("Mode", str(flow.get("ExecutionMode") or "Standard")),
        ("Description", str(flow.get("Description") or "-")),
        ("Role", str(flow.get("RoleArn") or "-")),
        ("Created", str(flow.get("CreatedTime") or "-")),
        ("Modified", str(flow.get("LastModifiedTime") or "-")),
    ]) + "\n\n" + str(flow.get("Definition") or "").rstrip()  # fmt: skip


def execution_fields(execution: Mapping[str, Any], failure: tuple[str, str] | None = None) -> str:
    """DescribeExecution for reading: status (coloured), times, input and output as indented JSON, error and cause."""
    pairs = [
        ("Name", str(execution.get("Name", ""))),
        ("Flow", str(execution.get("FlowName", ""))),
        ("Status", styled_status(str(execution.get("Status", "")))),
        ("Started", str(execution.get("StartedTime") or "-")),
        ("Stopped", str(execution.get("StoppedTime") or "-")),
    ]
    if failure is not None:
        pairs += [("Error", click.style(failure[0], fg="red")), ("Cause", failure[1] or "-")]
    pairs += [("Input", pretty_json(execution.get("Input"))), ("Output", pretty_json(execution.get("Output")))]
    return fields(pairs)
