"""Prometheus metrics of worker and timers processes, served on `host:metrics_port` (0: off).

Each process serves its own registry on its own port (in Kubernetes one process per pod, all
on the same port; on one machine give each process its own `OPENFNF_METRICS_PORT`). Tasks
run in the serving process with the `solo` (default) or `threads` pool; with `prefork` the
tasks run in children this registry cannot see, so prefork is refused with metrics on.

- `openfnf_worker_tasks_total{task, outcome}`: tasks run; a drive's outcome is what it
  returned (driven, busy, missing, fenced, idle, handed_back), an activity's ok/failed;
- `openfnf_worker_task_seconds{task}`: task duration histogram;
- `openfnf_executions_total{status}`: execution lifecycle events this process committed
  (Started, Succeeded, Failed, TimedOut, Stopped...), i.e. executions by status over time
  (common/execmetrics.py; the front door counts the flows it runs to their end at their start);
- `openfnf_timers_fired_total`, `openfnf_timers_redriven_total`: the timers loop's work;
- read from Redis at scrape time: `openfnf_queue_depth{queue}` (messages waiting in the
  drives/activities lists), `openfnf_timers_pending`, `openfnf_wakeups_pending`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common import brokers, keys
from common.execmetrics import count_execution_events
from common.settings import Settings
from common.taskmsg import DRIVE_TASK

logger = logging.getLogger(__name__)

TASKS = Counter("openfnf_worker_tasks", "Celery tasks run by this worker, by task and outcome.", ["task", "outcome"])
TASK_SECONDS = Histogram(
    "openfnf_worker_task_seconds",
    "Duration of Celery tasks run by this worker.",
    ["task"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TIMERS_FIRED = Counter("openfnf_timers_fired", "Due timers moved into execution inboxes.")
REDRIVEN = Counter("openfnf_timers_redriven", "Executions re-driven by the safety net (overdue wake-ups).")

DRIVE_OUTCOMES = frozenset({"driven", "busy", "missing", "fenced", "idle", "handed_back"})  # bounded label values


def record_history(events: Iterable[Any]) -> None:
    """Count the execution-level events (ExecutionStarted, ExecutionSucceeded...) of a committed drive."""
    count_execution_events(getattr(event, "type", "") for event in events)


class RedisDepthCollector(Collector):
    """Queue and timer backlogs, read from Redis when Prometheus scrapes (one pipeline)."""

    def __init__(self, state: Any, broker: Any, queues: list[str], partitions: int = 16) -> None:
        self.partitions = partitions  # Settings.partitions: the timers and wake-up zsets summed
        self.state = state
        self.broker = broker
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("openfnf_queue_depth", "Messages waiting in a Celery queue (the broker's count: Redis list length, RabbitMQ ready messages).", labels=["queue"])
        try:
            lengths = brokers.queue_lengths(self.broker, self.queues)  # the broker's own counts (Redis or RabbitMQ)
            pipe = self.state.pipeline(transaction=False)
            n = self.partitions
            for p in range(n):
                pipe.zcard(keys.timers(p, n))
                pipe.zcard(keys.wake(p, n))
            counts = pipe.execute()
            timers, wakeups = sum(counts[0::2]), sum(counts[1::2])
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because Redis is away; the series are then absent
            logger.warning("metrics: cannot read queue depths from Redis: %s", exc)
            return
        for queue, n in zip(self.queues, lengths, strict=True):
            depth.add_metric([queue], float(n))
        yield depth
        yield GaugeMetricFamily("openfnf_timers_pending", "Timers waiting to fire (Wait states, retries, timeouts).", value=float(timers))
        yield GaugeMetricFamily("openfnf_wakeups_pending", "Executions with a safety-net wake-up recorded.", value=float(wakeups))


def serve(settings: Settings, registry: CollectorRegistry = REGISTRY) -> Any:
    """Serve /metrics on host:metrics_port with the Redis backlog gauges; None when metrics_port is 0."""
    if not settings.metrics_port:
        return None

    from common.redisclients import state_client

    state = state_client(settings, socket_timeout=2, socket_connect_timeout=2)
    broker = brokers.sync_broker(settings, state, socket_timeout=2)
    registry.register(RedisDepthCollector(state, broker, [settings.drive_queue, settings.activity_queue], settings.partitions))
    server, _thread = start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    return server


def install_worker(app: Any) -> None:
    """Count and time every task of a Celery app (signals run in the process that runs the task)."""
    from celery import signals

    started: dict[str, float] = {}

    def on_prerun(task_id: str | None = None, **_: Any) -> None:
        if task_id:
            started[task_id] = time.perf_counter()

    def on_postrun(task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **_: Any) -> None:
        name = getattr(task, "name", "?")
        t0 = started.pop(task_id or "", None)
        if t0 is not None:
            TASK_SECONDS.labels(task=name).observe(time.perf_counter() - t0)
        if state == "SUCCESS":
            outcome = retval if name == DRIVE_TASK and retval in DRIVE_OUTCOMES else "ok"
        else:
            outcome = "failed"
        TASKS.labels(task=name, outcome=outcome).inc()

    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)


def start_for_worker(app: Any, settings: Settings, pool: str) -> None:
    """Count the worker's tasks and serve /metrics when metrics_port is set (solo/threads pools only)."""
    if settings.metrics_port and pool == "prefork":
        raise ValueError("worker metrics need the solo or threads pool: prefork runs tasks in children this process cannot count")
    install_worker(app)
    serve(settings)
