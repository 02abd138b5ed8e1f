"""The benchmark's scenarios 6 and 7 (python -m bench --only dmap,cluster): the pieces that run without
servers. The parts themselves are run by hand (bench/README.md); no test asserts their figures."""
from __future__ import annotations

import json
from pathlib import Path

import fakeredis

from bench import charts, run
from bench.distributed_map import inline_count, rows
from bench.scale_workers import QUEUE, queued_executions
from common.taskmsg import drive_messages


def test_the_new_parts_are_selectable() -> None:
    assert {"dmap", "cluster"} <= set(run.PARTS) <= set(run.STEPS)


def test_inline_count_is_the_most_rows_the_limit_allows() -> None:
    n = inline_count(65536)
    assert len(json.dumps({"items": rows(n)}).encode()) <= 65536 < len(json.dumps({"items": rows(n + 1)}).encode())


def test_scale_workers_counts_executions_not_messages() -> None:
    r = fakeredis.FakeRedis()
    tags = [f"t{i}" for i in range(70)]
    r.lpush(QUEUE, *drive_messages(tags, QUEUE, 32))
    assert r.llen(QUEUE) == 3
    assert queued_executions(r) == 70


def test_charts_are_svg_without_a_date(tmp_path: Path) -> None:
    facts = {
        "dmap": {"express": 5100.0, "standard": 2500.0, "call": 180.0, "inline": 20000.0, "moto": 900.0, "per": 1830,
                 "items": 100_000, "call_items": 5000},
        "cluster": {"one": 1500.0, "split": 1700.0, "cluster": 1000.0, "cpu_one": 90.0, "cpu_state": 70.0, "cpu_broker_split": 15.0,
                    "shards": [30.0, 25.0, 28.0], "cpu_broker_cluster": 15.0, "share": 0.36, "keys": [10, 11, 12],
                    "ceiling_one": 11111.0, "ceiling_state": 14285.0, "ceiling_cluster": 33333.0},
    }  # fmt: skip
    first = charts.write(facts, tmp_path / "a", "caption")
    again = charts.write(facts, tmp_path / "b", "caption")
    assert [p.name for p in first] == ["bench-dmap.svg", "bench-cluster.svg"]
    for a, b in zip(first, again, strict=True):
        text = a.read_text()
        assert text.startswith("<?xml") and "<dc:date>" not in text
        assert a.read_bytes() == b.read_bytes()  # a file changes only when its figures do
    assert "5,100/s" in first[0].read_text() and "33,333/s" in first[1].read_text()  # text stays text (svg.fonttype none)


def test_the_instructions_chart_marks_half_of_the_first(tmp_path: Path) -> None:
    points = [("old", 510_400.0), ("new", 357_500.0)]
    path = charts.instructions_chart(points, tmp_path / "i.svg", "caption")
    text = path.read_text()
    assert text.startswith("<?xml") and "510k" in text and "358k" in text and "half of the first: 255k" in text
    assert charts.instructions_chart(points, tmp_path / "j.svg", "caption").read_bytes() == path.read_bytes()
