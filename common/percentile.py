"""The one percentile of the project's reports (the load-test report, the benchmarks): nearest rank."""
from __future__ import annotations

import math
from decimal import Decimal


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an ascending list: the smallest value with at least p% of
    the values at or below it; the first for p = 0, 0.0 for an empty list."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(Decimal(str(p)) * len(sorted_values) / 100)  # decimal: 7% of 100 is rank 7, not 8
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]
