"""Liveness of a worker or timers process: a heartbeat file, and `openfnf worker|timers --check`.

A thread rewrites a small JSON file every `heartbeat_interval_seconds`; it never touches Redis
or the broker, so a slow or unreachable broker does not make a healthy process look dead
(restarting it would not help). The file also records when the process's main loop last ran
and which task it is running since when, so `--check` fails (exit 1) when:

- there is no heartbeat file, or it is older than `heartbeat_stale_seconds` (process gone or frozen);
- the process named in it no longer exists;
- the main loop has not run for `heartbeat_stale_seconds` while no task is running and the
  process is not (re)connecting to the broker (a wedged loop);
- one task has run longer than `task_stuck_seconds` (when that setting is above 0).

A worker also keeps here the flag that it is shutting down (set on Celery's warm shutdown),
which the driver reads between rounds to hand an execution back instead of driving on.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import keys
from common.settings import Settings

logger = logging.getLogger(__name__)

STOPPING = threading.Event()  # set when this worker process begins its warm shutdown
# States in which the main loop legitimately does not tick: connecting (or reconnecting) to the
# broker with Celery's own retries. Restarting the process then would only add a back-off delay.
WAITING_STATES = ("starting", "reconnecting")


def shutting_down() -> bool:
    """Whether this process was told to stop (a driver then hands its execution back)."""
    return STOPPING.is_set()


def heartbeat_path(settings: Settings, role: str) -> Path:
    """Where the `role` process of these settings keeps its heartbeat."""
    if settings.heartbeat_file is not None:
        return Path(settings.heartbeat_file)
    return Path(tempfile.gettempdir()) / f"openfnf-{role}.alive"


class Heartbeat:
    """The heartbeat of one process: state kept by the process, written to a file by a thread."""

    def __init__(self, path: Path, role: str, interval: float, redis_url: str | None = None, cluster: bool = False) -> None:
        self.path = path
        self.role = role
        self.interval = interval
        self.state = "starting"  # starting -> ready -> stopping
        self.loop_at = time.time()  # last time the main loop showed progress (epoch seconds)
        self.task: str | None = None
        self.task_since: float | None = None
        self.failing_since: float | None = None  # tasks fail with a Redis error since (task_outcome)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis_thread: threading.Thread | None = None
        # Also a beat in Redis (keys.HEARTBEATS), so the console shows every process, not one machine's files.
        self.member = f"{role}:{socket.gethostname()}/{os.getpid()}"
        self._redis: Any = None
        if redis_url:
            from common.redisclients import client_for  # here, not at the top: `--check` imports this module and must stay cheap

            self._redis = client_for(redis_url, cluster, socket_timeout=2, socket_connect_timeout=2)

    def tick(self) -> None:
        """The main loop ran (cheap: called from the loop itself)."""
        self.loop_at = time.time()

    def task_started(self, name: str) -> None:
        """A task began in the main loop."""
        self.task, self.task_since = name, time.time()
        self.tick()

    def task_ended(self) -> None:
        """The task ended."""
        self.task, self.task_since = None, None
        self.tick()

    def task_outcome(self, error: BaseException | None) -> None:
        """A task ended with `error` (None: it succeeded). Tasks that keep failing on Redis errors other
        than Redis being unreachable (a client that cannot follow a cluster, a protocol error) make
        `--check` fail once that has lasted heartbeat_stale_seconds; a success clears it."""
        if error is None or not is_lasting_redis_error(error):
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = time.time()

    def snapshot(self) -> dict[str, Any]:
        """What the file holds."""
        return {
            "pid": os.getpid(),
            "role": self.role,
            "state": self.state,
            "at": time.time(),
            "loop_at": self.loop_at,
            "task": self.task,
            "task_since": self.task_since,
            "failing_since": self.failing_since,
        }

    def write(self) -> None:
        """Replace the file atomically (a reader never sees half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
        os.replace(tmp, self.path)

    def beat_redis(self) -> None:
        """The console's beat: this process's member of keys.HEARTBEATS, scored with now (ms)."""
        try:
            self._redis.zadd(keys.HEARTBEATS, {self.member: int(time.time() * 1000)})
        except Exception as exc:  # noqa: BLE001 - the file is the probe's truth; Redis only feeds the console
            logger.debug("heartbeat not written to Redis: %s", exc)

    def start(self) -> None:
        """Write now, then every `interval` seconds from a daemon thread (and Redis beats from another:
        a frozen Redis must never delay the file the liveness probe reads)."""
        self.write()
        self._thread = threading.Thread(target=self._run, name=f"openfnf-{self.role}-heartbeat", daemon=True)
        self._thread.start()
        if self._redis is not None:
            self.beat_redis()
            self._redis_thread = threading.Thread(target=self._run_redis, name=f"openfnf-{self.role}-redis-beat", daemon=True)
            self._redis_thread.start()

    def _run_redis(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_redis()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except OSError as exc:  # a full or read-only disk: the check then fails, which is what we want
                logger.warning("could not write the heartbeat file %s: %s", self.path, exc)

    def stop(self) -> None:
        """Stop writing and remove the file: a check after a clean exit fails at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval + 1)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        if self._redis_thread is not None:
            self._redis_thread.join(timeout=2 * self.interval + 3)
        if self._redis is not None:
            try:
                self._redis.zrem(keys.HEARTBEATS, self.member)
            except Exception:  # noqa: BLE001 - an expired beat ages out of the console's view anyway
                pass
            self._redis.close()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a liveness check."""

    alive: bool
    reason: str


def is_lasting_redis_error(error: BaseException) -> bool:
    """A Redis client error a restart may cure: not Redis being unreachable (that is /readyz's)."""
    import redis
    from redis.exceptions import ClusterDownError, MasterDownError

    away = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, MasterDownError)
    return isinstance(error, redis.RedisError) and not isinstance(error, away)


def judge(doc: dict[str, Any] | None, now: float, stale: float, stuck: float, pid_alive: bool) -> Verdict:
    """Decide liveness from a heartbeat document (pure: the clock and the pid test come in)."""
    if doc is None:
        return Verdict(False, "no heartbeat file")
    try:
        at, loop_at = float(doc["at"]), float(doc["loop_at"])
        since = doc.get("task_since")
        task_since = None if since is None else float(since)
    except (KeyError, TypeError, ValueError):
        return Verdict(False, "unreadable heartbeat file")
    if now - at > stale:
        return Verdict(False, f"heartbeat is {now - at:.1f} s old (limit {stale:g} s)")
    if not pid_alive:
        return Verdict(False, f"process {doc.get('pid')} is gone")
    failing = doc.get("failing_since")
    if isinstance(failing, int | float) and now - failing > stale:
        return Verdict(False, f"tasks have failed on Redis errors for {now - failing:.1f} s (limit {stale:g} s)")
    if task_since is not None:
        if stuck > 0 and now - task_since > stuck:
            return Verdict(False, f"task {doc.get('task')} has run for {now - task_since:.1f} s (limit {stuck:g} s)")
        return Verdict(True, f"alive, running {doc.get('task')} for {now - task_since:.1f} s")
    if doc.get("state") in WAITING_STATES:
        return Verdict(True, f"alive ({doc.get('state')})")
    if now - loop_at > stale:
        return Verdict(False, f"main loop has not run for {now - loop_at:.1f} s (limit {stale:g} s)")
    return Verdict(True, f"alive ({doc.get('state')})")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def check(settings: Settings, role: str) -> Verdict:
    """The liveness of this machine's (container's) `role` process, from its heartbeat file."""
    path = heartbeat_path(settings, role)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = None
    except (OSError, ValueError):
        doc = {}
    if doc is not None and not isinstance(doc, dict):
        doc = {}
    pid_alive = doc is not None and _pid_alive(doc.get("pid"))
    return judge(doc, time.time(), settings.heartbeat_stale_seconds, settings.task_stuck_seconds, pid_alive)


def run_check(settings: Settings, role: str) -> int:
    """`openfnf <role> --check`: print the verdict, return the exit status (0 alive, 1 not)."""
    verdict = check(settings, role)
    print(f"openfnf {role}: {verdict.reason}")
    return 0 if verdict.alive else 1


def install_worker(app: Any, settings: Settings) -> Heartbeat:
    """Wire a heartbeat into a Celery app: task start/end, warm shutdown, and a main-loop tick."""
    from celery import bootsteps, signals

    beat = Heartbeat(heartbeat_path(settings, "worker"), "worker", settings.heartbeat_interval_seconds, settings.redis_url, settings.redis_cluster)
    interval = settings.heartbeat_interval_seconds

    class LoopTick(bootsteps.StartStopStep):
        """A timer on the consumer's event loop: it fires only while that loop really runs."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, parent: Any) -> None:
            beat.tick()
            beat.state = "ready"
            try:  # at once, before any task runs: `openfnf dev` tells a crash from a failed start by it
                beat.write()
            except OSError as exc:
                logger.warning("could not write the heartbeat file %s: %s", beat.path, exc)
            self.tref = parent.timer.call_repeatedly(max(0.05, interval / 2), beat.tick)

        def stop(self, parent: Any) -> None:
            # Celery stops the consumer's steps on a lost broker connection, then reconnects.
            beat.state = "stopping" if STOPPING.is_set() else "reconnecting"
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

    app.steps["consumer"].add(LoopTick)

    def on_prerun(sender: Any = None, **_: Any) -> None:
        beat.task_started(getattr(sender, "name", "?"))

    def on_postrun(**_: Any) -> None:
        beat.task_ended()

    def on_success(**_: Any) -> None:
        beat.task_outcome(None)

    def on_failure(exception: BaseException | None = None, **_: Any) -> None:
        beat.task_outcome(exception)

    def on_shutting_down(**_: Any) -> None:
        STOPPING.set()
        beat.state = "stopping"
        beat.tick()

    # weak=False: these closures live only in the signal registry.
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    return beat
