"""common/percentile.py: the nearest-rank percentile both the load-test report and the benchmarks print."""
from __future__ import annotations

import pytest

from common.percentile import percentile

TEN = [float(v) for v in range(1, 11)]
HUNDRED = [float(v) for v in range(1, 101)]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, 0.0),
        ([4.0], 0, 4.0),
        ([4.0], 99, 4.0),
        ([1.0, 2.0], 50, 1.0),  # rank ceil(1.0) = 1: half the values at or below it (bench used to say 2.0)
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 50, 3.0),  # 3.0 exactly: no rounding half to even
        ([1.0, 2.0, 3.0], 50, 2.0),
        (TEN, 0, 1.0),
        (TEN, 10, 1.0),
        (TEN, 11, 2.0),
        (TEN, 90, 9.0),
        (TEN, 99, 10.0),
        (TEN, 100, 10.0),
        (HUNDRED, 7, 7.0),  # 7% of 100 in floating point is 7.000000000000001: still rank 7
        (HUNDRED, 29, 29.0),
        (HUNDRED, 99, 99.0),
        (HUNDRED, 99.9, 100.0),
        ([float(v) for v in range(1, 1001)], 99.9, 999.0),
    ],
)
def test_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_the_report_and_the_benchmarks_use_this_one() -> None:
    import bench.httpload
    import bench.measure
    import openfnf.loadreport

    assert bench.httpload.percentile is openfnf.loadreport.percentile is bench.measure.percentile is percentile
