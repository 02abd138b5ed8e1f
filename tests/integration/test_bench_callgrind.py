"""The bench's instruction counts (bench/callgrind.py): the replay's (bench.rediscost --callgrind) and the real
service's (bench.rediswork --callgrind), with redis-server under valgrind. Without valgrind these fail under
CI=true (`.ci/run` installs it) and skip elsewhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import callgrind, rediscost, rediswork
from bench.services import ROOT
from tests import needs


@pytest.fixture(autouse=True)
def _valgrind() -> None:
    missing = callgrind.available()
    if missing:
        needs.missing(missing)


def test_the_replay_counts_instructions_per_execution(capsys: pytest.CaptureFixture[str]) -> None:
    assert rediscost.main(["--callgrind", "--n", "64", "--only", "base,no-count"]) == 0
    rows = dict(re.findall(r"^\| (base|no-count): .*? \| ([0-9.]+) \|", capsys.readouterr().out, re.M))
    assert set(rows) == {"base", "no-count"}
    assert 50 < float(rows["no-count"]) < float(rows["base"])  # leaving the INCRBY and DECRBY out costs less


def test_the_service_is_counted_in_instructions_with_its_idle_polling_left_out(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # run as --code runs another checkout (here: this one, by another path)
    checkout.symlink_to(ROOT)
    res = rediswork.measure(60, 1, 1, tmp_path / "work", instructions=True, code=checkout)
    ins = res["instructions"]
    assert 0 < ins["background_share"] < 1 and ins["idle_per_s"] > 0
    assert 50_000 < ins["per_execution"]  # a start's scripts and commands
    assert res["commands"]["evalsha"]["calls"] >= 1  # the claim of every execution (run to its end at its start)
    assert "instructions per execution" in rediswork.table(res)


def test_checkouts_are_compared_with_the_first_and_charted_in_instructions_only() -> None:
    with pytest.raises(SystemExit):
        rediswork.main(["--callgrind", "--code", ".", "--chart", "x.svg"])  # a chart compares two or more
    with pytest.raises(SystemExit):
        rediswork.main(["--code", ".", "--code", ".", "--chart", "x.svg"])  # ... in instructions
    table = rediswork.comparison([("old", 500_000.0), ("new", 350_000.0)], 2000)
    assert "| old | 500.0 | +0.0% |" in table and "| new | 350.0 | -30.0% |" in table
    assert "| new | 70.0 | -30.0% |" in rediswork.comparison([("old", 100.0), ("new", 70.0)], 2000, instructions=False)
    assert re.fullmatch(r"[0-9a-f]{7,} \d{4}-\d\d-\d\d .+", rediswork.checkout_label(ROOT))
