"""MapRun names, child callbacks, counts and the tolerance rule (pure; issue 16)."""
from __future__ import annotations

import pytest

from common.mapruns import child_callback, child_name, counts, describe_view, parse_callback, run_name, tolerance_exceeded


def test_names_are_deterministic_hex_and_children_valid_execution_names() -> None:
    a = run_name("fid/exec", "12")
    assert a == run_name("fid/exec", "12") and a != run_name("fid/exec", "12/2")
    assert len(a) == 32 and set(a) <= set("0123456789abcdef")
    assert child_name(a, 7) == f"m{a}-7"
    assert parse_callback(child_callback("fid/" + a, 7)) == ("fid/" + a, 7)
    assert parse_callback("some-task-token") is None


@pytest.mark.parametrize(
    ("tcount", "tpct", "failed", "total", "exceeded"),
    [
        ("", "", 0, 10, False),
        ("", "", 1, 10, True),  # neither set: the first failure fails the run
        ("2", "", 2, 10, False),
        ("2", "", 3, 10, True),  # strictly more than the count
        ("", "50", 5, 10, False),
        ("", "50", 6, 10, True),
        ("0", "100", 10, 10, True),  # both set: passing either fails it
        ("10", "0", 1, 10, True),
        ("10", "100", 10, 10, False),
        ("", "10", 3, 0, False),  # Total not known yet: no percentage
    ],
)
def test_tolerance(tcount: str, tpct: str, failed: int, total: int, exceeded: bool) -> None:
    assert tolerance_exceeded({"tcount": tcount, "tpct": tpct, "failed": str(failed), "total": str(total)}) is exceeded


def test_counts_add_up_and_describe_view() -> None:
    rec = {"name": "r", "pname": "p", "status": "Running", "started": "1000", "conc": "5", "tcount": "", "tpct": "2.5",
           "total": "10", "running": "3", "succeeded": "4", "failed": "1", "aborted": "0"}  # fmt: skip
    assert counts(rec) == {"Total": 10, "Pending": 2, "Running": 3, "Succeed": 4, "Failed": 1, "Aborted": 0}
    view = describe_view(rec)
    assert view["StartedTime"] == "1970-01-01T00:00:01.000Z" and "StoppedTime" not in view
    assert (view["Concurrency"], view["ToleratedFailedCount"], view["ToleratedFailedPercentage"]) == (5, 0, 2.5)
