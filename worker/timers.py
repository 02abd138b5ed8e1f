"""The timers process: moves due timers into inboxes and re-drives executions whose wake-up is overdue.

Safe to run several: entries are claimed for a while with claim_due.lua, and every effect
(an inbox event with a deterministic id, a drive) is harmless if repeated.
"""
from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import brokers, keys
from common.mapruns import drive_message as maprun_drive_message
from common.redisurl import for_redis_py
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK, redis_task_message
from worker import metrics as worker_metrics
from worker.activities import WORKER_CRASHED, worker_crashed
from worker.dispatch import push_drives
from worker.heartbeat import Heartbeat, heartbeat_path
from worker.schedules import ScheduleFirer
from worker.spans import timer_spans

logger = logging.getLogger(__name__)

BATCH = 500
CLAIM_MS = 30000  # a claimed timer not finished within this fires again


class Timers:
    """One timers loop against a state Redis and a broker Redis."""

    def __init__(self, state: Any, broker: Any, settings: Settings) -> None:
        self.state = state
        self.broker = broker
        self.settings = settings
        self.scripts = Scripts(state)
        self.stopping = False
        self.on_tick: Any = None  # called once per loop: the heartbeat's proof that the loop runs
        self.schedules = ScheduleFirer(state, self.scripts, settings, self.publish_drives)  # issue 8

    def publish_drives(self, tags: list[str]) -> None:
        """Push drive messages for these executions."""
        push_drives(self.broker, self.settings, tags)

    def fire_timers(self, now: int) -> int:
        """Append the event of every due timer to its execution's inbox and drive it."""
        claimed = self.scripts.claim_due(keys=[keys.TIMERS], args=[now, BATCH, CLAIM_MS])
        if not claimed:
            return 0
        due = [(json.loads(member), member, score) for member, score in zip(claimed[::2], claimed[1::2], strict=True)]
        wake = self.settings.wake_after_ms

        def build(pipe: Any) -> None:
            for entry, member, score in due:
                tag = entry["tag"]
                pipe.zadd(keys.WAKE, {tag: now + wake})
                # With `now`, append.lua keeps the execution's drive mark: a drive already queued
                # (several timers of one execution due together) is not published again.
                self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [json.dumps(entry["event"]), now, wake])
                self.scripts.queue(pipe, "release_if", [keys.TIMERS], [member, score])

        with timer_spans(self.state, [entry for entry, _, _ in due]):  # openfnf.timer spans when tracing is on
            results = self.scripts.pipeline_sync(build)  # one round trip for the whole batch
        appended = results[1::3]
        tags = [entry["tag"] for (entry, _, _), got in zip(due, appended, strict=True) if len(got) > 2 and int(got[2]) == 1]
        self.publish_drives(tags)
        worker_metrics.TIMERS_FIRED.inc(len(due))
        return len(due)

    def rescue(self, now: int) -> int:
        """Re-drive executions whose inbox still holds events past their wake-up deadline."""
        claimed = self.scripts.claim_due(keys=[keys.WAKE], args=[now, BATCH, self.settings.wake_after_ms])
        if not claimed:
            return 0
        members = [m.decode() if isinstance(m, bytes) else m for m in claimed[::2]]
        scores = claimed[1::2]
        pipe = self.state.pipeline(transaction=False)
        for tag in members:
            pipe.llen(keys.inbox(tag))
        lengths = pipe.execute()
        redrive = [tag for tag, n in zip(members, lengths, strict=True) if n]
        idle = [(tag, score) for tag, score, n in zip(members, scores, lengths, strict=True) if not n]
        if idle:
            self.scripts.pipeline_sync(lambda pipe: [self.scripts.queue(pipe, "release_if", [keys.WAKE], [t, s]) for t, s in idle])
        if redrive and self.broker.llen(self.settings.drive_queue) > self.settings.rescue_backlog_limit:
            # The workers are behind: these executions' drives are most likely still queued, and
            # pushing more would only grow the backlog (a storm). They stay armed (claim_due pushed
            # their deadline on) and are rescued once the queue is short again; nothing is lost.
            return len(members)
        if redrive:
            logger.info("safety net: re-driving %d execution(s)", len(redrive))
            worker_metrics.REDRIVEN.inc(len(redrive))
        self.publish_drives(redrive)
        return len(members)

    def rescue_activities(self, now: int) -> int:
        """Publish again the activities no worker has shown life for (a message lost with a killed
        worker); those of ended executions are forgotten. A duplicate run is harmless: activities are
        at least once, and the interpreter takes one result per activity id.

        A call begun max_activity_crashes times by workers that then died without reporting (a
        handler that kills its process: os._exit, a segfault, the OOM killer) is not run again: its
        task fails with FnF.WorkerCrashed, which Retry and Catch see. The starts are counted in Redis
        (keys.ACTIVITY_STARTS, by ActivityRunner.begin), so restarted workers and pods count on."""
        claimed = self.scripts.claim_due(keys=[keys.ACTIVITIES], args=[now, BATCH, self.settings.activity_rescue_ms])
        if not claimed:
            return 0
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in claimed[::2]]
        pipe = self.state.pipeline(transaction=False)
        for member in members:
            pipe.hget(keys.ACTIVITY_COMMANDS, member)
            pipe.hget(keys.execution(member.rsplit("#", 1)[0]), "status")
            pipe.hget(keys.ACTIVITY_STARTS, member)
        answers = pipe.execute()
        again: list[tuple[str, bytes]] = []
        gone: list[str] = []
        crashed: list[tuple[str, dict[str, Any], int]] = []
        limit = self.settings.max_activity_crashes
        for member, raw, status, starts in zip(members, answers[::3], answers[1::3], answers[2::3], strict=True):
            if raw is None or status is None or status.decode() in ("Succeeded", "Failed", "Stopped", "TimedOut"):
                gone.append(member)
            elif limit > 0 and starts is not None and int(starts) >= limit:
                crashed.append((member, json.loads(raw), int(starts)))
            else:
                again.append((member, raw))
        if gone:
            pipe = self.state.pipeline(transaction=False)
            for member in gone:
                pipe.zrem(keys.ACTIVITIES, member)
                pipe.hdel(keys.ACTIVITY_COMMANDS, member)
                pipe.hdel(keys.ACTIVITY_STARTS, member)
            pipe.execute()
        if crashed:
            self.fail_crashed(now, crashed)
        if again:
            queue = self.settings.activity_queue
            logger.info("safety net: running %d activit(y/ies) again", len(again))
            self.broker.lpush(queue, *(
                redis_task_message(ACTIVITY_TASK, [m.rsplit("#", 1)[0], json.loads(raw)], queue) for m, raw in again
            ))  # fmt: skip
        return len(members)

    def fail_crashed(self, now: int, crashed: list[tuple[str, dict[str, Any], int]]) -> None:
        """End each (member, command, starts) activity with FnF.WorkerCrashed and drive its execution."""
        wake = self.settings.wake_after_ms
        entries = []
        for member, command, starts in crashed:
            tag = member.rsplit("#", 1)[0]
            logger.warning(
                "activity %s of %s (%s) was begun %d times and each time its worker died; the task fails with %s",
                command.get("id"), tag, command.get("resource") or command.get("kind"), starts, WORKER_CRASHED,
            )  # fmt: skip
            outcome = worker_crashed(starts, self.settings.max_activity_crashes)
            event = {"t": "ActivityFailed", "id": command["id"], "error": outcome.error, "cause": outcome.cause}
            entries.append((tag, member, json.dumps(event)))

        def build(pipe: Any) -> None:
            for tag, member, event in entries:
                pipe.zadd(keys.WAKE, {tag: now + wake})
                self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [event, now, wake])
                pipe.zrem(keys.ACTIVITIES, member)  # after the append: a crash in between fails it again, never loses it
                pipe.hdel(keys.ACTIVITY_COMMANDS, member)
                pipe.hdel(keys.ACTIVITY_STARTS, member)

        results = self.scripts.pipeline_sync(build)
        appended = results[1::5]
        self.publish_drives([tag for (tag, _, _), got in zip(entries, appended, strict=True) if len(got) > 2 and int(got[2]) == 1])

    def rescue_mapruns(self, now: int) -> int:
        """Drive again the MapRuns whose wake-up passed (a drive message lost with a killed worker, or a
        batched refill, worker/mapruns.py); each drive arms its run again, and an ended run is forgotten.
        Their drives go to the end of the activities queue served next (issue 16)."""
        claimed = self.scripts.claim_due(keys=[keys.MAPRUN_WAKE], args=[now, BATCH, self.settings.wake_after_ms])
        if not claimed:
            return 0
        tags = [m.decode() if isinstance(m, bytes) else str(m) for m in claimed[::2]]
        queue = self.settings.activity_queue
        self.broker.rpush(queue, *(maprun_drive_message(t, queue) for t in tags))
        return len(tags)

    def run(self) -> None:
        """Loop until SIGTERM/SIGINT."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        idle = self.settings.timers_poll_ms / 1000
        failing = False  # said once when Redis fails, once when it answers again (not every retry)
        while not self.stopping:
            if self.on_tick is not None:
                self.on_tick()
            try:
                now = int(time.time() * 1000)
                busy = self.fire_timers(now) + self.rescue(now) + self.rescue_activities(now) + self.schedules.fire(now)
                busy += self.rescue_mapruns(now)
                if failing:
                    failing = False
                    logger.warning("timers: Redis answers again")
            except redis.RedisError as exc:
                logger.log(logging.DEBUG if failing else logging.WARNING, "timers: Redis error, retrying every 0.5 s: %s", exc)
                failing = True
                busy = 0
                time.sleep(0.5)
            if not busy:
                time.sleep(idle)

    def _stop(self, *_: object) -> None:
        self.stopping = True


def run_timers(settings: Settings) -> None:
    """Run the timers loop in this process."""
    # A hung Redis surfaces as an error the loop survives (still ticking), so liveness does not depend
    # on it; no client-side retries: the loop itself retries every poll.
    hung = {"socket_timeout": max(0.2, settings.heartbeat_stale_seconds / 6), "retry": Retry(NoBackoff(), 0)}
    hung["socket_connect_timeout"] = hung["socket_timeout"]
    state = redis.Redis.from_url(for_redis_py(settings.redis_url), **hung)
    broker = brokers.sync_broker(settings, state, **hung)  # a Redis, or RabbitMQ (common/brokers.py)
    timers = Timers(state, broker, settings)
    beat = Heartbeat(heartbeat_path(settings, "timers"), "timers", settings.heartbeat_interval_seconds, settings.redis_url)
    timers.on_tick = beat.tick  # liveness file for `openfnf timers --check`
    worker_metrics.serve(settings)  # /metrics on metrics_port, if set
    beat.state = "ready"
    beat.start()
    try:
        timers.run()
    finally:
        beat.stop()
