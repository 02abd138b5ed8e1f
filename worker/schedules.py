"""The timers' schedule firing: each due tick of an enabled schedule starts one execution, exactly once.

Several timers processes may run. A due schedule is claimed for a while with claim_due.lua (so
normally one process takes it), and the tick T it fires starts the execution named
`<schedule>-<T>` (common/schedules.py): a second firing of the same tick, by a process that took
over a stalled claim or ran again after a crash, collides on claim.lua and starts nothing. Then
arm_schedule.lua moves `next` from T to the next tick, unless an API write changed the schedule.

A tick at most `schedule_catchup_seconds` late (a slow or briefly stalled timers process) fires,
and so does each tick after it, so nothing is lost to a hiccup. After a longer outage the missed
ticks do not come as a burst: the first missed tick fires once, late, and the schedule continues
with its first tick after now (docs/compatibility.md).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from common import keys, runcount, tracing
from common.claims import PendingClaim, queue_claim, queue_express_timeout
from common.cron import CronError, next_fire, parse_cron
from common.records import as_str, decode_hash
from common.redisclients import is_cluster
from common.schedules import parse_member, tick_execution_name
from common.scripts import Scripts
from common.settings import Settings
from worker.spans import schedule_start

logger = logging.getLogger(__name__)

BATCH = 200
CLAIM_MS = 30000  # a schedule claimed but not re-armed within this (a dead timers process) is taken again


class ScheduleFirer:
    """Fires due schedule ticks against one state Redis (sync client); `publish` hands drives to Celery."""

    def __init__(self, state: Any, scripts: Scripts, settings: Settings, publish: Callable[[list[str]], None]) -> None:
        self.state = state
        self.scripts = scripts
        self.settings = settings
        self.publish = publish

    def fire(self, now: int, parts: list[int] | None = None) -> int:
        """Fire every schedule due at `now` (epoch ms) in partitions `parts` (default all); returns how
        many due entries were handled."""
        n = self.settings.partitions
        parts = list(range(n)) if parts is None else parts
        answers = self.scripts.pipeline_sync(
            self.scripts.each("claim_due", [([keys.schedules_due(p, n)], [now, BATCH, CLAIM_MS]) for p in parts])
        )  # one round trip per node
        claimed = [x for answer in answers for x in answer]
        tags: list[str] = []
        for raw, score in zip(claimed[::2], claimed[1::2], strict=True):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                tag = self.fire_one(text, int(score), now)
            except Exception:  # one bad schedule must not stop the others; its claim expires and it is retried
                logger.exception("firing schedule %s failed", text)
                continue
            if tag:
                tags.append(tag)
        self.publish(tags)
        return len(claimed) // 2

    def fire_one(self, text: str, claim_score: int, now: int) -> str | None:
        """Handle one claimed due entry; returns the tag of the execution it started, if any."""
        account, flow_name, flow_id, name = parse_member(text)
        pipe = self.state.pipeline(transaction=False)
        pipe.hgetall(keys.schedule(account, flow_id, name))
        pipe.hgetall(keys.flow(account, flow_name))
        raw_rec, raw_flow = pipe.execute()
        record, flow = decode_hash(raw_rec), decode_hash(raw_flow)
        if not record:  # deleted: drop the hint
            self._release(text, claim_score)
            return None
        if flow.get("Id") != flow_id:  # its flow was deleted (and maybe created again): the schedule went with it
            self._drop_orphan(account, flow_id, name)
            self._release(text, claim_score)
            return None
        if record.get("Enable") != "1" or not record.get("next"):
            self._release(text, claim_score)  # disabled schedules are not armed; enabling arms them again
            return None
        tick = int(record["next"])
        if tick > now:  # woken early (the schedule was changed): wait for the record's tick
            self._raise_hint(text, account, flow_id, name, tick)
            return None
        try:
            cron = parse_cron(record.get("CronExpression", ""))
        except CronError as exc:  # validated when stored; only a hand-edited record gets here
            logger.warning("schedule %s/%s has an unusable CronExpression, not firing it: %s", flow_name, name, exc)
            self._release(text, claim_score)
            return None
        tag = self._start(account, flow, record, name, tick, now)
        # Slightly late: go on from this tick (the next may be due at once). Long missed: from now.
        catch_up = now - tick <= self.settings.schedule_catchup_seconds * 1000
        following = next_fire(cron, tick if catch_up else now, int(record.get("anchor") or 0))
        self._arm(text, account, flow_id, name, tick, following)
        return tag

    def _start(self, account: str, flow: dict[str, str], record: dict[str, str], name: str, tick: int, now: int) -> str | None:
        """Claim the tick's execution; its tag if this call started it, None if the tick had fired already."""
        payload = record.get("Payload", "")
        try:
            input_obj = json.loads(payload) if payload else {}
        except ValueError:
            input_obj = {}
        if not isinstance(input_obj, dict):
            input_obj = {}
        execution = tick_execution_name(name, tick)
        express = flow.get("ExecutionMode") == "Express"
        pending: list[PendingClaim] = []
        cluster = is_cluster(self.state)
        if cluster:  # the wake-up durable before the claim (one pipeline orders them on one server only)
            tag = keys.execution_tag(flow["Id"], execution)
            self.state.zadd(keys.wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})

        def build(pipe: Any) -> None:
            pending[:] = [
                queue_claim(
                    self.scripts, pipe, self.settings, account=account, flow=flow, name=execution,
                    raw_input=payload, input_obj=input_obj, def_id=flow["DefId"], now=now, trace=trace, wake=not cluster,
                )
            ]  # fmt: skip
            if express:
                queue_express_timeout(pipe, pending[0].tag, now, self.settings.express_timeout_seconds, self.settings.partitions)

        with schedule_start(flow["Name"], execution, name):  # the execution's trace starts here (tracing on)
            trace = tracing.traceparent()
            results = self.scripts.pipeline_sync(build)
        claim = pending[0].outcome(results)
        if not claim.created:  # fired before (a stalled or crashed timers process)
            return None
        self.state.incr(runcount.key_for(account, pending[0].tag, self.settings.running_shards))  # the running-executions cap (issue 7)
        logger.info("schedule %s/%s fired: execution %s", flow["Name"], name, execution)
        return pending[0].tag

    def _arm(self, text: str, account: str, flow_id: str, name: str, tick: int, following: int | None) -> None:
        """Move the schedule from `tick` to `following`; if it changed meanwhile, follow the record."""
        skey = keys.schedule(account, flow_id, name)
        if following is None:  # the expression has no further tick: nothing to arm
            self.state.hset(skey, "next", "")
            return

        def build(pipe: Any) -> None:
            # Raise the hint before the compare-and-set: an API write after it lowers it again (ZADD LT).
            pipe.zadd(self._due(text), {text: following})
            self.scripts.queue(pipe, "arm_schedule", [skey], [tick, following])

        _, armed = self.scripts.pipeline_sync(build)
        if int(armed[0]) == 0:
            nxt, enabled = as_str(armed[1]), as_str(armed[2])
            if enabled == "1" and nxt:
                self.state.zadd(self._due(text), {text: int(nxt)}, lt=True)

    def _raise_hint(self, text: str, account: str, flow_id: str, name: str, tick: int) -> None:
        """Set the hint to the record's tick, then re-read the record: a change in between wins (ZADD LT)."""
        pipe = self.state.pipeline(transaction=False)
        pipe.zadd(self._due(text), {text: tick})
        pipe.hmget(keys.schedule(account, flow_id, name), "next", "Enable")
        _, (nxt, enabled) = pipe.execute()
        nxt, enabled = as_str(nxt), as_str(enabled)
        if enabled == "1" and nxt and int(nxt) != tick:
            self.state.zadd(self._due(text), {text: int(nxt)}, lt=True)

    def _due(self, text: str) -> str:
        return keys.schedules_due_for(text, self.settings.partitions)

    def _release(self, text: str, claim_score: int) -> None:
        self.scripts.release_if(keys=[self._due(text)], args=[text, claim_score])

    def _drop_orphan(self, account: str, flow_id: str, name: str) -> None:
        pipe = self.state.pipeline(transaction=True)
        pipe.delete(keys.schedule(account, flow_id, name))
        pipe.zrem(keys.schedule_index(account, flow_id), name)
        pipe.execute()
