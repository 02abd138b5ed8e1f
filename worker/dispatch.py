"""Carrying out a decision's commands: timers into the sorted set, activities onto their queue,
callback tasks marked waiting, and a finished child's result reported to its parent's token.

The driver calls this BEFORE it commits the decision. If it dies in between, or loses its fence,
the next drive derives the same commands with the same ids: timers and task marks are written
again (idempotent), an activity may run twice (activities are at least once), and the interpreter
takes one result per id, so history stays exactly once.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from common import keys
from common.interpreter import Decision, Status
from common.interpreter.model import CommandType
from common.lineage import orphans, stop_tree
from common.records import dumps
from common.reports import failed_event, report_keys, succeeded_event
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import drive_messages
from common.tokens import InvalidToken, parse_token
from worker.activities import activity_member, activity_messages, waits_for_report
from worker.mapruns import abort_runs, child_ended
from worker.spans import report_span, with_trace

logger = logging.getLogger(__name__)

STOPPED_ERROR = "FnF.Stopped"  # a stopped child with no Error given, as its parent sees it
TIMED_OUT_ERROR = "FnF.Timeout"  # a timed-out child, as its parent sees it


def timer_member(tag: str, timer_id: str) -> str:
    """The TIMERS zset member of one timer (deterministic, so re-arming the same timer is idempotent)."""
    return json.dumps({"tag": tag, "event": {"t": "TimerFired", "id": timer_id}}, sort_keys=True, separators=(",", ":"))


def push_drives(broker: Any, settings: Settings, tags: list[str]) -> None:
    """Push drive messages for these executions onto the drive queue (batched: common/taskmsg.py)."""
    if tags:
        broker.lpush(settings.drive_queue, *drive_messages(tags, settings.drive_queue, settings.drive_batch))


class Dispatcher:
    """Writes the side effects of decisions (sync redis-py clients for state and broker)."""

    def __init__(self, state: Any, broker: Any, settings: Settings) -> None:
        self.state = state
        self.broker = broker
        self.settings = settings
        self.scripts = Scripts(state)

    def publish_drives(self, tags: list[str]) -> None:
        """Push drive messages for these executions."""
        push_drives(self.broker, self.settings, tags)

    def dispatch(self, tag: str, commands: list[dict[str, Any]], account: str = "", orphaned: dict[str, Any] | None = None) -> None:
        """Timers, task marks and activity messages for one execution's commands; RunActivity commands
        carry the execution's `account` ("acct"), whose key a function gets (worker/account_keys.py).
        With `orphaned` (the StopRequested event, common/lineage.py), the child flows that cancelled
        tasks waited for are stopped."""
        if not commands:
            return
        activities = []
        cancelled: set[str] = set()
        n = self.settings.partitions
        pipe = self.state.pipeline(transaction=False)
        for command in commands:
            kind, cid = command.get("t"), str(command.get("id"))
            if kind == CommandType.START_TIMER:
                pipe.zadd(keys.timers_for(tag, n), {timer_member(tag, cid): int(command["fire_at"])})
            elif kind == CommandType.CANCEL_TIMER:
                pipe.zrem(keys.timers_for(tag, n), timer_member(tag, cid))
            elif kind == CommandType.CANCEL_ACTIVITY:
                pipe.hset(keys.tasks(tag), cid, "done")  # its token's reports are TaskAlreadyCompleted from now on
                cancelled.add(cid)
                pipe.zrem(keys.activities_for(tag, n), activity_member(tag, cid))  # and it is never run again
                pipe.hdel(keys.activity_commands_for(tag, n), activity_member(tag, cid))
                pipe.hdel(keys.activity_starts_for(tag, n), activity_member(tag, cid))
            elif kind == CommandType.RUN_ACTIVITY:
                if waits_for_report(command):
                    pipe.hsetnx(keys.tasks(tag), cid, "waiting")
                activities.append({**command, "acct": account} if account else command)
            else:
                logger.error("unknown command %r from the interpreter; ignored", kind)
        if activities:
            activities = with_trace(activities)  # the drive span's traceparent, for each activity's span
            # Recorded before they are published: a message lost with a killed worker is run again
            # by the timers after activity_rescue_ms (worker/timers.py rescue_activities).
            members = [activity_member(tag, str(c["id"])) for c in activities]
            pipe.hset(keys.activity_commands_for(tag, n), mapping={m: json.dumps(c) for m, c in zip(members, activities, strict=True)})
            pipe.zadd(keys.activities_for(tag, n), dict.fromkeys(members, int(time.time() * 1000) + self.settings.activity_rescue_ms))
        kids_at = -1
        if cancelled and orphaned is not None:
            kids_at = len(pipe)  # read after the tasks are marked done: adopt.lua adopts no child of theirs from now on
            pipe.hgetall(keys.children(tag))
        results = pipe.execute()
        # A distributed Map's MapRun is aborted with its activity (worker/mapruns.py).
        abort_runs(self.scripts, self.broker, self.settings, tag, sorted(cancelled), int(time.time() * 1000))
        if kids_at >= 0 and orphaned is not None:
            self._stop_orphans(tag, orphans(results[kids_at], cancelled), orphaned)
        if activities:
            queue = self.settings.activity_queue
            self.broker.lpush(queue, *activity_messages(tag, activities, queue, self.settings.activity_batch))

    def _stop_orphans(self, tag: str, kids: list[str], event: dict[str, Any]) -> None:
        """Stop these children of `tag`, whose tasks were cancelled (they stop theirs in turn)."""
        if not kids:
            return
        self.state.hdel(keys.children(tag), *kids)
        publish = stop_tree(self.scripts, kids, event, int(time.time() * 1000), self.settings.wake_after_ms, self.settings.partitions)
        logger.info("stopping %d child execution(s) of %s and theirs: the tasks that waited for them were cancelled", len(kids), tag)
        self.publish_drives(publish)

    def notify_parent(self, callback_token: str, decision: Decision, now: int, tag: str = "") -> None:
        """A finished execution (`tag`) started with CallbackFnFTaskToken reports its end to that token
        and leaves its parent's children hash (common/lineage.py); a MapRun's child reports to its run
        (worker/mapruns.py)."""
        if child_ended(self.scripts, self.broker, self.settings, callback_token, decision.status.value, now):
            return
        try:
            ref = parse_token(self.settings.token_secret, callback_token)
        except InvalidToken:
            logger.warning("callback token of a finished execution does not verify; nobody is told")
            return
        if decision.status == Status.SUCCEEDED:
            event = succeeded_event(ref.task_id, decision.output)
        else:
            default = STOPPED_ERROR if decision.status == Status.STOPPED else TIMED_OUT_ERROR
            event = failed_event(ref.task_id, decision.error or default, decision.cause or "")
        wake_after = self.settings.wake_after_ms

        def build(pipe: Any) -> None:
            if tag:
                pipe.hdel(keys.children(ref.tag), tag)
            pipe.zadd(keys.wake_for(ref.tag, self.settings.partitions), {ref.tag: now + wake_after})
            self.scripts.queue(pipe, "report", report_keys(ref), [ref.task_id, dumps(event), "", now, wake_after])

        with report_span(self.state, ref.tag, ref.task_id, decision.status == Status.SUCCEEDED):
            result = self.scripts.pipeline_sync(build)[-1]
        if int(result[0]) == 1 and int(result[2]) == 1:  # delivered, and no drive of the parent queued (report.lua)
            self.publish_drives([ref.tag])
