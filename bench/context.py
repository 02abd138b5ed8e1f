"""What every scenario gets: the run's sizes, its work dir, the shared peer, and the report to add rows to."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.services import Moto
from bench.table import Report

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """Counts and durations of one run (`--quick` shrinks them for a smoke test)."""

    duration: float = 10.0  # seconds of StartExecution load
    warmup: float = 1.0  # seconds of load before that window
    concurrency: int = 64
    pass10: int = 5000  # executions of the 10-state flow, ours
    pass10_peer: int = 500  # the peer's (it is much slower)
    peer_timeout: float = 180.0  # seconds the peer gets to finish a batch
    scaling: int = 3000  # executions per worker-count row
    latency: int = 200  # sequential 1-state executions, ours
    latency_peer: int = 100
    fanout: int = 10  # executions of the 100-item Map, each
    memory: int = 10_000  # executions per memory figure
    celery: int = 5000  # bare Celery tasks per row
    workers: tuple[int, ...] = (1, 2, 4)
    front_doors: int = 2  # front door processes sharing the port in scenarios 2 and 4 (scenario 1 measures 1 and 2)
    dmap_items: int = 100_000  # scenario 6: rows of the CSV a distributed Map reads (Express and Standard children)
    dmap_small_items: int = 10_000  # ... and a smaller run of each, to show memory flat in the item count
    dmap_call_items: int = 5_000  # ... rows whose children call a function
    inline_items: int = 20_000  # items our inline Map runs in all (executions of as many as the state size allows)
    inline_items_peer: int = 5_000  # moto's inline Map
    repeat: int = 2  # throughput figures: best of this many attempts (other load on a shared machine only ever lowers them)

    @classmethod
    def quick(cls) -> Sizes:
        """A smoke run: every scenario in a few seconds."""
        return cls(duration=3.0, warmup=0.5, pass10=500, pass10_peer=60, peer_timeout=40.0, scaling=300, latency=30,
                   latency_peer=15, fanout=3, memory=1000, celery=500, dmap_items=5000, dmap_small_items=1000,
                   dmap_call_items=300, inline_items=2000, inline_items_peer=500, repeat=1)  # fmt: skip


@dataclass
class Ctx:
    """Shared by the scenarios of one run."""

    workdir: Path
    sizes: Sizes
    report: Report
    moto: Moto | None = None
    profile_dir: Path | None = None  # py-spy profiles go here when set
    facts: dict[str, Any] = field(default_factory=dict)  # figures one scenario leaves for another (bare limits)
    broker: str | None = None  # `--broker`: an AMQP URL scenario 2 also runs on, beside the Redis broker

    def sub(self, name: str) -> Path:
        """A fresh directory for one part's processes and logs."""
        path, n = self.workdir / name, 1
        while path.exists():  # a repeated attempt gets its own (its redis-server must not load the last one's data)
            n += 1
            path = self.workdir / f"{name}-{n}"
        path.mkdir(parents=True)
        return path

    def best(self, label: str, attempt: Callable[[], T], score: Callable[[T], float]) -> T:
        """Run attempt() `sizes.repeat` times; keep the one with the highest score (recorded in facts[label])."""
        results: list[tuple[float, T]] = []
        for _ in range(max(1, self.sizes.repeat)):
            got = attempt()
            results.append((score(got), got))
        self.facts.setdefault("attempts", {})[label] = [round(s, 1) for s, _ in results]
        return max(results, key=lambda pair: pair[0])[1]

    def mark(self, part: str) -> None:
        """Remember the 1-minute load average as a part starts (printed under the table)."""
        self.facts.setdefault("load", []).append(f"{part} {os.getloadavg()[0]:.1f}")

    def peer(self) -> Moto:
        """The moto server, started on first use, reset before each scenario."""
        if self.moto is None:
            self.moto = Moto(self.sub("moto")).start()
        return self.moto
