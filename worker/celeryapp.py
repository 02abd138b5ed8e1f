"""The Celery app: JSON only, late acks, prefetch 1, one queue for drives and one for activities."""
from __future__ import annotations

import gc
import logging
from typing import Any

import redis
from celery import Celery, signals

from common.redisurl import for_kombu, for_redis_py
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK, DRIVE_TASK
from worker import heartbeat
from worker import metrics as worker_metrics
from worker.activities import ActivityRunner
from worker.children import ChildStarter
from worker.dispatch import Dispatcher
from worker.driver import Driver
from worker.account_keys import AccountKeys
from worker.functions import Caller, Functions, load_functions

logger = logging.getLogger(__name__)

# Drives never wait for the visibility timeout (settings.visibility_timeout_seconds): the safety net
# re-drives them sooner. Activities of a killed worker come back after it.


class _Process:
    """Per-process state, made lazily after any fork."""

    settings: Settings | None = None
    driver: Driver | None = None
    activities: ActivityRunner | None = None


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
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Sweep for abandoned messages often enough that the timeout, not the sweep, decides.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_seconds // 4)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    _Process.settings = settings

    app.conf.task_routes = {ACTIVITY_TASK: {"queue": settings.activity_queue}, DRIVE_TASK: {"queue": settings.drive_queue}}

    @app.task(name=DRIVE_TASK, ignore_result=True)
    def drive(*tags: str) -> str:
        """Drive a batch of executions (common/taskmsg.py drive_messages); the outcome counted in
        /metrics is "driven" if any of them was."""
        outcomes = _driver().drive_many(list(tags)).values()
        return "driven" if "driven" in outcomes else next(iter(outcomes), "idle")

    @app.task(name=ACTIVITY_TASK, ignore_result=True)
    def activity(tag: str, command: dict[str, Any] | list[dict[str, Any]]) -> str:
        return _activities().run(tag, command)

    return app


def _clients(settings: Settings) -> tuple[Any, Any]:
    state = redis.Redis.from_url(for_redis_py(settings.redis_url))
    broker_url = for_redis_py(settings.effective_broker_url)
    broker = state if broker_url == for_redis_py(settings.redis_url) else redis.Redis.from_url(broker_url)
    return state, broker


def _driver() -> Driver:
    if _Process.driver is None:
        assert _Process.settings is not None
        state, broker = _clients(_Process.settings)
        _Process.driver = Driver(state, _Process.settings, Dispatcher(state, broker, _Process.settings))
    return _Process.driver


def _activities() -> ActivityRunner:
    if _Process.activities is None:
        settings = _Process.settings
        assert settings is not None
        state, broker = _clients(settings)
        dispatcher = Dispatcher(state, broker, settings)
        caller = Caller(
            settings.functions_access_key_id, settings.functions_access_key_secret,
            settings.functions_endpoint or f"{settings.host}:{settings.port}",
        )  # fmt: skip
        account_keys = AccountKeys(settings.credentials, settings.credentials_poll_seconds)  # a key per account
        functions = Functions(load_functions(settings.functions), caller, account_keys)
        publish = lambda tag: dispatcher.publish_drives([tag])  # noqa: E731
        _Process.activities = ActivityRunner(state, settings, functions, publish, ChildStarter(state, settings, publish), broker=broker)
    return _Process.activities


def _settle_heap(**_: Any) -> None:
    """Once the worker is up: move what start-up allocated out of the garbage collector's sight,
    and collect the young generation less often. Each drive allocates many short-lived objects
    (events, JSON), and with Celery's tens of thousands of long-lived objects on the heap the
    default thresholds spent a tenth of a worker's CPU in collections (py-spy, bench pass10)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


# Celery's loggers of one INFO line per task ("Task ... received", "Task ... succeeded in ..."):
# two lines per task drowned what matters (17 MB for 15,000 executions). They are DEBUG lines here.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


class _PerTaskAtDebug(logging.Filter):
    """Celery's per-task INFO records become DEBUG records (shown only at log level DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def quiet_per_task_lines(level: str) -> None:
    """Per-task lines at DEBUG; INFO keeps what starts, stops, fails or is retried. Above DEBUG the
    loggers are raised to WARNING, so Celery skips building those lines at all (it checks once)."""
    for name in PER_TASK_LOGGERS:
        log = logging.getLogger(name)
        if logging.getLevelName(level.upper()) == logging.DEBUG:
            log.addFilter(_PerTaskAtDebug())
        else:
            log.setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))


def run_worker(settings: Settings, queues: list[str], concurrency: int, pool: str, extra: list[str] | None = None) -> Any:
    """Run a real `celery worker` in this process until it is told to stop."""
    quiet_per_task_lines(settings.log_level)
    app = make_celery(settings)
    beat = heartbeat.install_worker(app, settings)  # liveness file for `openfnf worker --check`
    worker_metrics.start_for_worker(app, settings, pool)  # /metrics on metrics_port, if set
    argv = [
        *(["--quiet"] if settings.log_format == "json" else []),  # no banner: every line on stderr is JSON
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
    signals.worker_ready.connect(_settle_heap, weak=False)
    beat.start()
    try:
        return app.worker_main(argv)
    finally:
        beat.stop()
