"""Measuring helpers: the load client as a process, CPU seconds of a process, OpenFnF's execution times from Redis."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import redis

from bench.services import ROOT, base_env
from common import keys
from common.percentile import percentile

TERMINAL = {"Succeeded", "Failed", "Stopped", "TimedOut"}


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run bench.httpload with this spec in its own process; its JSON result."""
    limit = float(spec.get("duration", 10)) + float(spec.get("warmup", 0)) + 180
    out = subprocess.run(
        [sys.executable, "-m", "bench.httpload", json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, env=base_env(), timeout=limit, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Ended:
    """How a batch of OpenFnF executions ended, from their records' own timestamps (ms)."""

    total: int
    by_status: dict[str, int]
    started: list[int]
    stopped: list[int]
    waited: float  # seconds the harness waited
    complete: bool  # every execution ended before the deadline

    @property
    def span_s(self) -> float:
        """Seconds from the first start to the last end."""
        return (max(self.stopped) - min(self.started)) / 1000 if self.stopped else 0.0

    @property
    def succeeded(self) -> int:
        """How many ended Succeeded."""
        return self.by_status.get("Succeeded", 0)

    def rate(self) -> float:
        """Executions ended Succeeded per second over the span."""
        return self.succeeded / self.span_s if self.span_s > 0 else 0.0

    def latencies_ms(self) -> list[float]:
        """Start-to-end of each ended execution, ascending."""
        return sorted(float(b - a) for a, b in zip(self.started, self.stopped, strict=True))

    def pct_ms(self, p: float) -> float:
        """Percentile of start-to-end in ms."""
        return percentile(self.latencies_ms(), p)


def wait_ended(r: redis.Redis, flow_id: str, names: list[str], timeout: float, poll: float = 0.5) -> Ended:
    """Poll the records (pipelined HGET status of the ones still running) until all ended or timeout."""
    t0 = time.monotonic()
    pending = list(names)
    statuses: dict[str, str] = {}
    while pending:
        pipe = r.pipeline(transaction=False)
        for n in pending:
            pipe.hget(keys.execution(keys.execution_tag(flow_id, n)), "status")
        still = []
        for n, raw in zip(pending, pipe.execute(), strict=True):
            status = raw.decode() if raw else ""
            if status in TERMINAL:
                statuses[n] = status
            else:
                still.append(n)
        pending = still
        if not pending or time.monotonic() - t0 > timeout:
            break
        time.sleep(poll)
    waited = time.monotonic() - t0
    pipe = r.pipeline(transaction=False)
    done = [n for n in names if n in statuses]
    for n in done:
        pipe.hmget(keys.execution(keys.execution_tag(flow_id, n)), "started", "stopped")
    started, stopped = [], []
    for raw in pipe.execute():
        started.append(int(raw[0]))
        stopped.append(int(raw[1]))
    by_status: dict[str, int] = {}
    for n in names:
        s = statuses.get(n, "Running")
        by_status[s] = by_status.get(s, 0) + 1
    return Ended(len(names), by_status, started, stopped, waited, not pending)


def wait_until(predicate: Any, timeout: float, poll: float = 0.2) -> bool:
    """Poll predicate() until true or timeout; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())
