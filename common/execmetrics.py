"""The executions counter every process that ends executions keeps (issue 10's /metrics): the workers for
what their drives commit, the front door for flows run to their end at their start (common/purestart.py).

`openfnf_executions_total{status}` counts execution-level history events (ExecutionStarted,
ExecutionSucceeded...) a process committed; summed over processes it is the service's count.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

EXECUTIONS = Counter("openfnf_executions", "Execution lifecycle events committed by this process, by status.", ["status"])
_PREFIX = "Execution"


def count_execution_events(types: Iterable[str]) -> None:
    """Count the execution-level events among these history event types."""
    for kind in types:
        if kind.startswith(_PREFIX) and len(kind) > len(_PREFIX):
            EXECUTIONS.labels(status=kind[len(_PREFIX) :]).inc()
