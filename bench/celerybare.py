"""The bare Celery limit: a task that does nothing, on a Celery app configured as OpenFnF's drive queue.

Same broker transport options, serializer, late acks and prefetch as worker/celeryapp.py, so the
difference to OpenFnF's drives per second is what a drive does beyond being a Celery task.

    BENCH_BROKER_URL=redis://... python -m celery -A bench.celerybare worker --pool=solo -Q bench.noop
"""
from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench.noop"
TASK = "bench.noop"

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_transport_options={"visibility_timeout": 3600, "unacked_restore_interval": 10, "unacked_restore_throttle": 1},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)


@app.task(name=TASK, ignore_result=True)
def noop(i: int) -> None:
    """Nothing: the cost of a task is Celery's own."""
