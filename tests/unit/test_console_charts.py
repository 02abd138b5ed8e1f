"""The console's server-side SVG: the timeline scales bars to the execution and escapes what users named."""
from __future__ import annotations

import re
import xml.dom.minidom

from common.browse import Minute
from common.overlay import Bar
from console.charts import minutes_svg, timeline_svg


def test_timeline_bars_are_scaled_from_the_first_start_to_the_last_end_and_open_bars_run_to_now() -> None:
    bars = [
        Bar("<Check & go>", "state", 1000, 1000, "succeeded", "n1", 0),
        Bar("Review", "state", 1000, 3000, "succeeded", "n2", 0),
        Bar("attempt 1", "attempt", 3000, None, "running", "n3", 1),
    ]
    svg = timeline_svg(bars, now=5000)
    xml.dom.minidom.parseString(svg)  # well-formed: every name is escaped
    assert "&lt;Check &amp; go&gt;" in svg and "<Check" not in svg
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == 2.0  # a 0 ms bar stays visible
    assert abs(widths[1] - widths[2]) < 0.5 and widths[1] > 100  # 2 s done, and 2 s so far (to `now`)
    assert "so far" in svg


def test_no_bars_no_chart() -> None:
    assert "<svg" not in timeline_svg([], now=0)


def test_the_minutes_chart_draws_three_lines_over_the_hour() -> None:
    minutes = [Minute(i * 60_000, i % 3, i % 2, 0) for i in range(60)]
    svg = minutes_svg(minutes)
    xml.dom.minidom.parseString(svg)
    lines = re.findall(r'<polyline class="line (\w+)" fill="none" points="([^"]+)"', svg)
    assert [name for name, _ in lines] == ["started", "succeeded", "failed"]
    assert all(len(points.split()) == 60 for _, points in lines)
