"""bench/rediscost.py replays an execution's Redis work with the service's own scripts, keys and acquire
on the bundled redis-server: every variant runs clean (a wrong argument would raise), and the AOF
it writes is what the table says."""
from __future__ import annotations

import pytest

from bench.rediscost import VARIANTS, main, replay


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_replays_without_an_error(variant: str) -> None:
    got = replay(variant, 64, 32)
    assert got["variant"] == variant and got["cpu_us"] > 0
    drives = variant != "at-claim"  # (that what-if ends every execution at its claim: nothing reaches a worker)
    assert set(got["phases"]) == ({"front door", "broker", "acquire", "commit"} if drives else {"front door"})
    if variant == "no-aof":
        assert got["aof_bytes"] == 0
    else:
        assert got["aof_bytes"] > 1000  # the record, its 700-byte history chunk, the rest


def test_the_table_names_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "64", "--repeat", "1", "--only", "base,no-count"]) == 0
    out = capsys.readouterr().out
    assert "| base: " in out and "| no-count: " in out and "acquire.lua" not in out
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
