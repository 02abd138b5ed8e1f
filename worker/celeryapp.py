"""The Celery app: JSON only, late acks, prefetch 1, one queue for drives and one for activities."""
from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery

from common.redisurl import for_kombu, for_redis_py
from common.settings import Settings
from common.taskmsg import DRIVE_TASK
from worker.driver import Driver

logger = logging.getLogger(__name__)

# Seconds before the Redis transport re-delivers an unacknowledged message. Above the longest
# activity timeout; drives never wait for it, because the safety net re-drives them sooner.
VISIBILITY_TIMEOUT = 3600


class _Process:
    """Per-process state, made lazily after any fork."""

    settings: Settings | None = None
    driver: Driver | None = None


def make_celery(settings: Settings) -> Celery:
    """The Celery app for these settings, with the drive task registered."""
    app = Celery("openfnf", broker=for_kombu(settings.effective_broker_url), set_as_current=True)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.drive_queue,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    _Process.settings = settings

    @app.task(name=DRIVE_TASK, ignore_result=True)
    def drive(tag: str) -> str:
        return _driver().drive(tag)

    return app


def _driver() -> Driver:
    if _Process.driver is None:
        assert _Process.settings is not None
        client = redis.Redis.from_url(for_redis_py(_Process.settings.redis_url))
        _Process.driver = Driver(client, _Process.settings)
    return _Process.driver


def run_worker(settings: Settings, queues: list[str], concurrency: int, pool: str, extra: list[str] | None = None) -> Any:
    """Run a real `celery worker` in this process until it is told to stop."""
    app = make_celery(settings)
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={settings.log_level}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *(extra or []),
    ]
    return app.worker_main(argv)
