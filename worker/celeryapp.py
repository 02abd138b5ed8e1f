"""The Celery app: JSON only, late acks, prefetch 1, one queue for drives and one for activities."""
from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Celery, signals

from common import brokers
from common.mapruns import MAPRUN_TASK
from common.redisclients import state_client
from common.redisurl import for_kombu
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK, DRIVE_TASK
from worker import heartbeat
from worker import metrics as worker_metrics
from worker.account_keys import AccountKeys
from worker.activities import ActivityRunner
from worker.children import ChildStarter
from worker.dispatch import Dispatcher
from worker.driver import Driver
from worker.functions import Caller, Functions, load_functions
from worker.mapruns import MapRuns

logger = logging.getLogger(__name__)

# Drives never wait for the visibility timeout (settings.visibility_timeout_seconds): the safety net
# re-drives them sooner. Activities of a killed worker come back after it.


class _Process:
    """Per-process state, made lazily after any fork."""

    settings: Settings | None = None
    driver: Driver | None = None
    activities: ActivityRunner | None = None
    mapruns: MapRuns | None = None


def make_celery(settings: Settings) -> Celery:
    """The Celery app for these settings, with the drive task registered."""
    brokers.refuse_cluster_broker(settings)
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
            # A frozen or cut-off broker must not hold the consumer's event loop (its sweep of unacked
            # messages is a synchronous call there) past the liveness limit: the call times out, Celery
            # reconnects, and the heartbeat says "reconnecting" (worker/heartbeat.py). Above BRPOP's 1 s.
            "socket_timeout": broker_socket_timeout(settings),
            "socket_connect_timeout": broker_socket_timeout(settings),
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    _Process.settings = settings

    app.conf.task_routes = {ACTIVITY_TASK: {"queue": settings.activity_queue}, DRIVE_TASK: {"queue": settings.drive_queue}}
    if brokers.broker_kind(settings.effective_broker_url) == "amqp":
        _configure_amqp(app, settings)
    app.conf.task_routes[MAPRUN_TASK] = {"queue": settings.activity_queue}

    @app.task(name=DRIVE_TASK, ignore_result=True)
    def drive(*tags: str) -> str:
        """Drive a batch of executions (common/taskmsg.py drive_messages); the outcome counted in
        /metrics is "driven" if any of them was."""
        outcomes = _driver().drive_many(list(tags)).values()
        return "driven" if "driven" in outcomes else next(iter(outcomes), "idle")

    @app.task(name=ACTIVITY_TASK, ignore_result=True)
    def activity(tag: str, command: dict[str, Any] | list[dict[str, Any]]) -> str:
        return _activities().run(tag, command)

    @app.task(name=MAPRUN_TASK, ignore_result=True)
    def maprun(tag: str) -> str:
        """Drive one MapRun of a distributed Map (worker/mapruns.py)."""
        return _mapruns().drive(tag)

    return app


def _configure_amqp(app: Celery, settings: Settings) -> None:
    """RabbitMQ as the broker: durable quorum queues (declared as every other publisher declares them,
    common/brokers.py), late acks as on Redis (a killed worker's messages go back to the queue as soon
    as its connection drops), and a short timer on the consumer's event loop (AmqpLoopTimer)."""
    from kombu.entity import Exchange as _Exchange
    from kombu.entity import Queue as _Queue

    Exchange: Any = _Exchange  # kombu's API is untyped
    Queue: Any = _Queue
    app.conf.update(
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True, queue_arguments=dict(brokers.QUORUM))
            for name in dict.fromkeys([settings.drive_queue, settings.activity_queue])
        ],
        task_create_missing_queue_type="quorum",
        broker_transport_options={"confirm_publish": True},
        worker_consumer="worker.celeryapp:AmqpConsumer",
        # No remote control (OpenFnF never uses it): its per-worker exclusive pidbox queue made a
        # worker that reconnected after a broker restart fail with RESOURCE_LOCKED when another worker
        # had the same node name, and it is one more queue per worker on the broker.
        worker_enable_remote_control=False,
    )
    app.steps["consumer"].add(AmqpLoopTimer)


AMQP_POLL_SECONDS = 0.05  # longest wait of the worker's event loop on RabbitMQ (AmqpLoopTimer)


def _make_amqp_steps() -> tuple[Any, Any]:
    from celery import bootsteps
    from celery.worker.consumer import Consumer

    class Timer(bootsteps.StartStopStep):
        """A timer that fires every AMQP_POLL_SECONDS on the consumer's event loop and does nothing.

        The loop sleeps in poll() until its next timer is due. py-amqp reads one frame per readable
        event and keeps the rest of what the socket gave it in its own buffer, so a message whose frames
        arrived together waits, unseen by poll(), until the next timer wakes the loop (the known Celery
        issue of AMQP consumers starved by long event-loop timers). With the heartbeat's 2.5 s tick as
        the next timer, 200 executions took 9.9 s and 55 safety-net re-drives; a short timer bounds
        that wait."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, parent: Any) -> None:
            self.tref = parent.timer.call_repeatedly(AMQP_POLL_SECONDS, _nothing)

        def stop(self, parent: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

    class Consumer_(Consumer):
        """Celery's consumer without native delayed delivery, which quorum queues would switch on: it
        declares dozens of exchanges and queues for ETA tasks, and OpenFnF sends none (timers live in Redis)."""

        class Blueprint(Consumer.Blueprint):  # type: ignore[valid-type,misc]  # celery-types declares it an attribute
            default_steps = [step for step in Consumer.Blueprint.default_steps if not step.endswith(":DelayedDelivery")]

    return Timer, Consumer_


def _nothing() -> None:
    """What AmqpLoopTimer does when it fires."""


AmqpLoopTimer, AmqpConsumer = _make_amqp_steps()


def _mapruns() -> MapRuns:
    if _Process.mapruns is None:
        assert _Process.settings is not None
        state, broker = _clients(_Process.settings)
        _Process.mapruns = MapRuns(state, broker, _Process.settings)
    return _Process.mapruns


def _clients(settings: Settings) -> tuple[Any, Any]:
    state = state_client(settings)
    return state, brokers.sync_broker(settings, state)


def broker_socket_timeout(settings: Settings) -> float:
    """Seconds a Redis broker command may block the worker: a third of the liveness limit, 2 to 10 s."""
    return max(2.0, min(10.0, settings.heartbeat_stale_seconds / 3))


def _driver() -> Driver:
    if _Process.driver is None:
        assert _Process.settings is not None
        state, broker = _clients(_Process.settings)
        _Process.driver = Driver(state, _Process.settings, Dispatcher(state, broker, _Process.settings))
    return _Process.driver


def _drive_here(publish: Callable[[str], None], tag: str) -> None:
    """The drive an activity's reported result asks for, run at once in this worker rather than queued.

    The report has set the execution's drive mark and wake-up (append.lua) exactly as for a queued
    drive, so a worker that dies before or during this drive loses nothing: the wake-up drives it.
    Sparing a Celery message per reported call was a third of the CPU of a function-calling MapRun
    child (issue 16; py-spy: Celery's and kombu's per-message work was ~45% of a worker's CPU).
    """
    try:
        _driver().drive_many([tag])
    except Exception:  # noqa: BLE001 - the drive goes through the queue instead
        logger.exception("driving %s after its activity failed; it is queued instead", tag)
        publish(tag)


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
        drive = partial(_drive_here, publish)
        _Process.activities = ActivityRunner(state, settings, functions, drive, ChildStarter(state, settings, publish), broker=broker)
        _Process.activities.mapruns = _mapruns()
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
