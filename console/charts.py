"""Server-side SVG: an execution's timeline (a Gantt of states and tasks) and the overview's per-minute chart."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

from common.browse import Minute
from common.overlay import Bar


class Throttled(NamedTuple):
    """One minute of the overview's 429 chart: ResourceThrottled answers of all front doors."""

    start: int  # ms
    throttled: int


ROW = 20  # px per timeline row
LABEL = 220  # px for the labels column
WIDTH = 900  # px of the whole chart


def _ms(value: int) -> str:
    if value < 1000:
        return f"{value} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def timeline_svg(bars: list[Bar], now: int) -> str:
    """A Gantt: one row per bar, scaled from the first start to the last end (open bars run to `now`)."""
    if not bars:
        return '<p class="muted">No state has run yet.</p>'
    t0 = min(b.start for b in bars)
    t1 = max(max(b.end if b.end is not None else now for b in bars), t0 + 1)
    span = t1 - t0
    plot = WIDTH - LABEL - 70
    height = ROW * len(bars) + 24
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline">']
    for tick in range(5):
        x = LABEL + plot * tick / 4
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 4}" class="tick">+{escape(_ms(int(span * tick / 4)))}</text>')
    for i, bar in enumerate(bars):
        y = i * ROW
        end = bar.end if bar.end is not None else now
        x = LABEL + plot * (bar.start - t0) / span
        w = max(2.0, plot * (end - bar.start) / span)
        indent = 12 * bar.depth
        label = escape(bar.label[:40])
        duration = _ms(max(0, end - bar.start)) + ("" if bar.end is not None else " so far")
        out.append(
            f'<g class="bar {escape(bar.kind)} s-{escape(bar.status)}" data-node="{escape(bar.node)}">'
            f'<title>{label}: {escape(duration)} ({escape(bar.status)})</title>'
            f'<text x="{4 + indent}" y="{y + 14}" class="label">{label}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" rx="2"/>'
            f'<text x="{min(x + w + 4, WIDTH - 66):.1f}" y="{y + 14}" class="dur">{escape(duration)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def minutes_svg(
    minutes: Sequence[Minute | Throttled], fields: tuple[str, ...] = ("started", "succeeded", "failed"), label: str = "executions per minute"
) -> str:
    """One line per field (started, succeeded, failed; or throttled) over the last hour, one point per minute."""
    height, left, bottom = 180, 40, 20
    plot_w, plot_h = WIDTH - left - 10, height - bottom - 10
    top = max([1] + [int(getattr(m, f)) for m in minutes for f in fields])
    out = [f'<svg class="minutes" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}">']
    out.append(f'<text x="4" y="14" class="tick">{top}</text><text x="4" y="{10 + plot_h}" class="tick">0</text>')
    out.append(f'<line x1="{left}" y1="{10 + plot_h}" x2="{left + plot_w}" y2="{10 + plot_h}" class="grid"/>')
    n = max(1, len(minutes) - 1)
    for field in fields:
        points = " ".join(
            f"{left + plot_w * i / n:.1f},{10 + plot_h - plot_h * getattr(m, field) / top:.1f}" for i, m in enumerate(minutes)
        )
        out.append(f'<polyline class="line {field}" fill="none" points="{points}"><title>{field}</title></polyline>')
    out.append(f'<text x="{left}" y="{height - 2}" class="tick">-60 min</text><text x="{left + plot_w - 30}" y="{height - 2}" class="tick">now</text>')
    out.append("</svg>")
    return "".join(out)
