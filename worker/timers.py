"""The timers process: moves due timers into inboxes and re-drives executions whose wake-up is overdue.

Safe to run several: entries are claimed for a while with claim_due.lua, and every effect
(an inbox event with a deterministic id, a drive) is harmless if repeated.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, MasterDownError
from redis.retry import Retry

from common import brokers, keys
from common.mapruns import drive_message as maprun_drive_message
from common.redisclients import is_cluster, state_client
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
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, MasterDownError)
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
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # in the partition leases
        self._owned: set[int] = set()
        self._renew_at = 0
        self._occupied: dict[Callable[[int, int], str], bool] = {}  # set -> some partition had a key at the last poll (Timers.due)
        self.redis_ok = True  # the last loop reached Redis (`timers --check` fails after lasting errors)
        self._rescue_at = 0  # when the next poll looks at the safety nets' sets (Timers.polled)

    def publish_drives(self, tags: list[str]) -> None:
        """Push drive messages for these executions."""
        push_drives(self.broker, self.settings, tags)

    def _claim(self, key: Callable[[int, int], str], parts: list[int] | None, now: int, claim_ms: int) -> list[tuple[int, list[Any]]]:
        """claim_due on partitions `parts` (default all) of the sets `key(p, n)` names, in one round
        trip per node: (partition, claimed) for each partition where something was due."""
        n = self.settings.partitions
        parts = list(range(n)) if parts is None else parts
        answers = self.scripts.pipeline_sync(
            self.scripts.each("claim_due", [([key(p, n)], [now, BATCH, claim_ms]) for p in parts])
        )
        return [(p, list(a)) for p, a in zip(parts, answers, strict=True) if a]

    def due(self, now: int, parts: list[int], sets: list[Callable[[int, int], str]]) -> list[list[int]]:
        """For each of the partitioned `sets`, those of partitions `parts` holding a member due at `now`: one
        round trip (per node) of plain ZRANGEBYSCORE ... LIMIT 0 1, so a poll that finds nothing due runs no
        script (issue 17: claim_due on every set of every partition every poll was most of an idle Redis's work).

        On a single Redis, a set whose partitions all were empty (no key) at the last poll is not peeked
        partition by partition: one EXISTS over its keys tells whether it has members now, and it is peeked
        from the next poll on (a member is then seen at most one poll later). A Cluster refuses a multi-key
        EXISTS across slots, so there every set is peeked every poll."""
        n = self.settings.partitions
        gate = not is_cluster(self.state)
        pipe = self.state.pipeline(transaction=False)
        peeked = []
        for key in sets:
            peek = not gate or self._occupied.get(key, True)
            if gate:
                pipe.exists(*(key(p, n) for p in parts))
            if peek:
                for p in parts:
                    pipe.zrangebyscore(key(p, n), "-inf", now, start=0, num=1)
            peeked.append(peek)
        found = iter(pipe.execute())
        out = []
        for key, peek in zip(sets, peeked, strict=True):
            if gate:
                self._occupied[key] = bool(next(found))
            out.append([p for p in parts if next(found)] if peek else [])
        return out

    def fire_timers(self, now: int, parts: list[int] | None = None) -> int:
        """Append the event of every due timer to its execution's inbox and drive it."""
        return sum(self._fire_timers(now, p, claimed) for p, claimed in self._claim(keys.timers, parts, now, CLAIM_MS))

    def _fire_timers(self, now: int, p: int, claimed: list[Any]) -> int:
        due = [(json.loads(member), member, score) for member, score in zip(claimed[::2], claimed[1::2], strict=True)]
        wake = self.settings.wake_after_ms
        n = self.settings.partitions

        def build(pipe: Any) -> None:
            for entry, member, score in due:
                tag = entry["tag"]
                pipe.zadd(keys.wake_for(tag, n), {tag: now + wake})
                # With `now`, append.lua keeps the execution's drive mark: a drive already queued
                # (several timers of one execution due together) is not published again.
                self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [json.dumps(entry["event"]), now, wake])
                self.scripts.queue(pipe, "release_if", [keys.timers(p, n)], [member, score])

        with timer_spans(self.state, [entry for entry, _, _ in due]):  # openfnf.timer spans when tracing is on
            results = self.scripts.pipeline_sync(build)  # one round trip (per node) for the whole batch
        appended = results[1::3]
        tags = [entry["tag"] for (entry, _, _), got in zip(due, appended, strict=True) if len(got) > 2 and int(got[2]) == 1]
        self.publish_drives(tags)
        worker_metrics.TIMERS_FIRED.inc(len(due))
        return len(due)

    def rescue(self, now: int, parts: list[int] | None = None) -> int:
        """Re-drive executions whose inbox still holds events past their wake-up deadline."""
        return sum(self._rescue(now, p, claimed) for p, claimed in self._claim(keys.wake, parts, now, self.settings.wake_after_ms))

    def _rescue(self, now: int, p: int, claimed: list[Any]) -> int:
        n = self.settings.partitions
        members = [m.decode() if isinstance(m, bytes) else m for m in claimed[::2]]
        scores = claimed[1::2]
        tags = self._resolve(members)
        pipe = self.state.pipeline(transaction=False)
        for tag in tags:
            pipe.llen(keys.inbox(tag or "-"))
        lengths = pipe.execute()
        redrive = [tag for tag, k in zip(tags, lengths, strict=True) if k and tag]
        idle = [(m, score) for m, tag, score, k in zip(members, tags, scores, lengths, strict=True) if not (k and tag)]
        if idle:
            self.scripts.pipeline_sync(self.scripts.each("release_if", [([keys.wake(p, n)], [t, s]) for t, s in idle]))
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

    def _resolve(self, members: list[str]) -> list[str | None]:
        """The execution tag of each wake-up member: a tag is itself; a StartExecution's wake-up written
        before its claim (keys.pending_start) is found through its flow's current id (None: no flow)."""
        starts = [json.loads(m) for m in members if m.startswith("[")]
        if not starts:
            return list(members)
        pipe = self.state.pipeline(transaction=False)
        for account, flow_name, _ in starts:
            pipe.hget(keys.flow(account, flow_name), "Id")
        ids = iter(pipe.execute())
        out: list[str | None] = []
        for m in members:
            if m.startswith("["):
                flow_id, name = next(ids), json.loads(m)[2]
                out.append(keys.execution_tag(flow_id.decode(), name) if flow_id else None)
            else:
                out.append(m)
        return out

    def rescue_activities(self, now: int, parts: list[int] | None = None) -> int:
        """Publish again the activities no worker has shown life for (a message lost with a killed
        worker); those of ended executions are forgotten. A duplicate run is harmless: activities are
        at least once, and the interpreter takes one result per activity id.

        A call begun max_activity_crashes times by workers that then died without reporting (a
        handler that kills its process: os._exit, a segfault, the OOM killer) is not run again: its
        task fails with FnF.WorkerCrashed, which Retry and Catch see. The starts are counted in Redis
        (keys.activity_starts, by ActivityRunner.begin), so restarted workers and pods count on."""
        claimed = self._claim(keys.activities, parts, now, self.settings.activity_rescue_ms)
        return sum(self._rescue_activities(now, p, c) for p, c in claimed)

    def _rescue_activities(self, now: int, p: int, claimed: list[Any]) -> int:
        n = self.settings.partitions
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in claimed[::2]]
        pipe = self.state.pipeline(transaction=False)
        for member in members:
            pipe.hget(keys.activity_commands(p, n), member)
            pipe.hget(keys.execution(member.rsplit("#", 1)[0]), "status")
            pipe.hget(keys.activity_starts(p, n), member)
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
                pipe.zrem(keys.activities(p, n), member)
                pipe.hdel(keys.activity_commands(p, n), member)
                pipe.hdel(keys.activity_starts(p, n), member)
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
        wake, n = self.settings.wake_after_ms, self.settings.partitions
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
                pipe.zadd(keys.wake_for(tag, n), {tag: now + wake})
                self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [event, now, wake])
                pipe.zrem(keys.activities_for(tag, n), member)  # after the append: a crash in between fails it again, never loses it
                pipe.hdel(keys.activity_commands_for(tag, n), member)
                pipe.hdel(keys.activity_starts_for(tag, n), member)

        results = self.scripts.pipeline_sync(build)
        appended = results[1::5]
        self.publish_drives([tag for (tag, _, _), got in zip(entries, appended, strict=True) if len(got) > 2 and int(got[2]) == 1])

    def rescue_mapruns(self, now: int, parts: list[int] | None = None) -> int:
        """Drive again the MapRuns whose wake-up passed (a drive message lost with a killed worker, or a
        batched refill, worker/mapruns.py); each drive arms its run again, and an ended run is forgotten.
        Their drives go to the end of the activities queue served next (issue 16)."""
        claimed = [x for _, c in self._claim(keys.maprun_wake, parts, now, self.settings.wake_after_ms) for x in c]
        if not claimed:
            return 0
        tags = [m.decode() if isinstance(m, bytes) else str(m) for m in claimed[::2]]
        queue = self.settings.activity_queue
        self.broker.rpush(queue, *(maprun_drive_message(t, queue) for t in tags))
        return len(tags)

    def share(self, now: int) -> list[int]:
        """The partitions this process polls: it renews its leases, counts the live timers processes
        (keys.TIMERS_MEMBERS) and holds about its share; a partition whose holder died (its lease
        expired after lease_ms) is taken by whoever has room."""
        n, ttl = self.settings.partitions, self.settings.lease_ms
        if now < self._renew_at:
            return sorted(self._owned)
        pipe = self.state.pipeline(transaction=False)
        pipe.zadd(keys.TIMERS_MEMBERS, {self.id: now})
        pipe.zremrangebyscore(keys.TIMERS_MEMBERS, "-inf", now - ttl)
        pipe.zcard(keys.TIMERS_MEMBERS)
        live = max(1, int(pipe.execute()[2]))
        fair = -(-n // live)
        mine = sorted(self._owned)
        kept = self.scripts.pipeline_sync(
            self.scripts.each("partition_lease", [([keys.partition_lease(p, n)], [self.id, ttl, "take"]) for p in mine])
        )
        self._owned = {p for p, ok in zip(mine, kept, strict=True) if int(ok)}
        if len(self._owned) > fair:  # more processes now: give some back
            extra = sorted(self._owned)[fair:]
            self.scripts.pipeline_sync(
                self.scripts.each("partition_lease", [([keys.partition_lease(p, n)], [self.id, ttl, "drop"]) for p in extra])
            )
            self._owned -= set(extra)
        elif len(self._owned) < fair:  # room for more: take free partitions (no holder, or the holder's lease expired)
            pipe = self.state.pipeline(transaction=False)
            for p in range(n):
                pipe.exists(keys.partition_lease(p, n))
            free = [p for p, held in enumerate(pipe.execute()) if not held and p not in self._owned]
            random.shuffle(free)  # processes starting together do not all reach for the same ones
            tried = free[: fair - len(self._owned)]
            got = self.scripts.pipeline_sync(
                self.scripts.each("partition_lease", [([keys.partition_lease(p, n)], [self.id, ttl, "take"]) for p in tried])
            )
            self._owned |= {p for p, ok in zip(tried, got, strict=True) if int(ok)}
        self._renew_at = now + ttl // 3
        return sorted(self._owned)

    def release(self) -> None:
        """Give back every lease (a stopping process: the others take its partitions at once)."""
        n, owned = self.settings.partitions, sorted(self._owned)
        self._owned = set()
        if owned:
            self.scripts.pipeline_sync(
                self.scripts.each("partition_lease", [([keys.partition_lease(p, n)], [self.id, 1, "drop"]) for p in owned])
            )
        self.state.zrem(keys.TIMERS_MEMBERS, self.id)

    def run(self) -> None:
        """Loop until SIGTERM/SIGINT."""
        if threading.current_thread() is threading.main_thread():  # (tests run the loop in a thread)
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        idle = self.settings.timers_poll_ms / 1000
        failing = False  # said once when Redis fails, once when it answers again (not every retry)
        while not self.stopping:
            try:
                now = int(time.time() * 1000)
                parts = self.share(now)
                busy = 0
                served = self.polled(now)
                due = self.due(now, parts, [key for key, _ in served]) if parts else []
                for (_, serve), due_parts in zip(served, due, strict=True):
                    if due_parts:  # claim_due (a script) only where something is due
                        busy += serve(now, due_parts)
                self.redis_ok = True
                if failing:
                    failing = False
                    logger.warning("timers: Redis answers again")
                if self.on_tick is not None:  # only a loop that reached Redis counts: `--check` fails through lasting errors
                    self.on_tick()
            except Exception as exc:  # noqa: BLE001 - the loop goes on whatever failed; --check tells which kind
                logger.log(logging.DEBUG if failing else logging.WARNING, "timers: Redis error, retrying every 0.5 s: %r", exc)
                failing = True
                self.redis_ok = False
                if isinstance(exc, REDIS_AWAY) and self.on_tick is not None:
                    # Redis unreachable: a restart would not help (the front door's /readyz says it);
                    # any other error (a client that cannot follow the cluster, a bug) that lasts past
                    # heartbeat_stale_seconds fails `timers --check`, so the orchestrator restarts it.
                    self.on_tick()
                busy = 0
                time.sleep(0.5)
            if not busy:
                time.sleep(idle)
        with contextlib.suppress(Exception):  # best effort: an unreleased lease expires after lease_ms
            self.release()

    def polled(self, now: int) -> list[tuple[Callable[[int, int], str], Callable[[int, list[int]], int]]]:
        """The partitioned sets this poll looks at, each with what serves its due members: timers, schedules
        and MapRun wake-ups (also refills, worker/mapruns.py) every poll; the safety nets (the wake-ups,
        the activity rescue) every rescue_poll_ms, as late as that on deadlines seconds away."""
        sets: list[tuple[Callable[[int, int], str], Callable[[int, list[int]], int]]] = [
            (keys.timers, self.fire_timers), (keys.schedules_due, self.schedules.fire), (keys.maprun_wake, self.rescue_mapruns),
        ]  # fmt: skip
        if now >= self._rescue_at:
            self._rescue_at = now + self.settings.rescue_poll_ms
            sets += [(keys.wake, self.rescue), (keys.activities, self.rescue_activities)]
        return sets

    def _stop(self, *_: object) -> None:
        self.stopping = True


def run_timers(settings: Settings) -> None:
    """Run the timers loop in this process."""
    # A hung Redis surfaces as an error the loop survives (still ticking), so liveness does not depend
    # on it; no client-side retries: the loop itself retries every poll.
    hung = {"socket_timeout": max(0.2, settings.heartbeat_stale_seconds / 6), "retry": Retry(NoBackoff(), 0)}
    hung["socket_connect_timeout"] = hung["socket_timeout"]
    brokers.refuse_cluster_broker(settings)  # before the cluster client, which connects at once
    brokers.refuse_cluster_server(settings)
    state = state_client(settings, **hung)
    broker = brokers.sync_broker(settings, state, **hung)  # a Redis, or RabbitMQ (common/brokers.py)
    timers = Timers(state, broker, settings)
    beat = Heartbeat(heartbeat_path(settings, "timers"), "timers", settings.heartbeat_interval_seconds, settings.redis_url, settings.redis_cluster)
    timers.on_tick = beat.tick  # liveness file for `openfnf timers --check`
    worker_metrics.serve(settings)  # /metrics on metrics_port, if set
    beat.state = "ready"
    beat.start()
    try:
        timers.run()
    finally:
        beat.stop()
