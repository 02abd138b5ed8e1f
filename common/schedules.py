"""Schedules in Redis: the record layout, the API view, tick names, and the async store of the front door.

A schedule is a hash (keys.schedule) holding its API fields plus `next` (the armed tick, epoch ms,
'' while disabled), `anchor` (where `@every` ticks count from) and `rev` (bumped by every API write,
so UpdateSchedule can refuse a concurrent change). The partitioned zsets keys.schedules_due wake the
timers at `next`; it is only a hint, the record is the truth. Writers keep this invariant: the
hint is never later than the record's `next` once both writes are done (API writers ZADD LT around
their script; the timers raise a hint only by ZADD then re-reading the record, see worker/schedules.py).
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from common import keys
from common.cron import Cron, next_fire
from common.records import decode_hash, decode_pairs
from common.scripts import Scripts
from common.timefmt import rfc3339_ms

TICK_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_NAME = 128


def member(account: str, flow_name: str, flow_id: str, name: str) -> str:
    """The schedule's member in keys.schedules_due (enough to find the flow and the record)."""
    return json.dumps([account, flow_name, flow_id, name], separators=(",", ":"))


def parse_member(raw: str | bytes) -> tuple[str, str, str, str]:
    """(account, flow name, flow id, schedule name) of a due-zset member."""
    account, flow_name, flow_id, name = json.loads(raw)
    return str(account), str(flow_name), str(flow_id), str(name)


def tick_execution_name(schedule_name: str, tick_ms: int) -> str:
    """The execution a tick starts: `<schedule>-<UTC tick time>`, unique per (schedule, tick) so a
    second firing of the same tick collides on the claim instead of starting another execution."""
    suffix = "-" + datetime.fromtimestamp(tick_ms // 1000, tz=UTC).strftime(TICK_FORMAT)
    if len(schedule_name) + len(suffix) <= MAX_NAME:
        return schedule_name + suffix
    digest = hashlib.sha256(schedule_name.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{schedule_name[:keep]}_{digest}{suffix}"


def arm(cron: Cron, now: int) -> tuple[str, str]:
    """(next, anchor) for a schedule (re)armed at `now`: its first tick strictly after now."""
    anchor = now // 1000 * 1000  # `@every` ticks fall on whole seconds, counted from here
    nxt = next_fire(cron, now, anchor)
    return ("" if nxt is None else str(nxt)), str(anchor)


def schedule_view(fields: dict[str, str]) -> dict[str, Any]:
    """The API's schedule object (Create/Update/Describe/ListSchedules)."""
    return {
        "ScheduleId": fields.get("ScheduleId", ""),
        "ScheduleName": fields.get("ScheduleName", ""),
        "Description": fields.get("Description", ""),
        "Payload": fields.get("Payload", ""),
        "CronExpression": fields.get("CronExpression", ""),
        "Enable": fields.get("Enable") == "1",
        "CreatedTime": rfc3339_ms(int(fields["CreatedTime"])) if fields.get("CreatedTime") else "",
        "LastModifiedTime": rfc3339_ms(int(fields["LastModifiedTime"])) if fields.get("LastModifiedTime") else "",
    }


class ScheduleStore:
    """Schedules of one Redis for the front door (redis.asyncio client)."""

    def __init__(self, redis: Any, scripts: Scripts, partitions: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.partitions = partitions  # Settings.partitions: which keys.schedules_due holds a schedule

    async def put(
        self, mode: str, account: str, flow: dict[str, str], name: str, fields: dict[str, str], rev: str = ""
    ) -> tuple[str, dict[str, str]]:
        """Create or update (mode) a schedule: ('ok', record) or ('flow' | 'exists' | 'missing' | 'conflict', {})."""
        pairs = [x for kv in fields.items() for x in kv]
        hint = member(account, flow["Name"], flow["Id"], name)
        nxt = fields.get("next", "")
        skeys = [keys.flow(account, flow["Name"]), keys.schedule(account, flow["Id"], name), keys.schedule_index(account, flow["Id"])]

        def build(pipe: Any) -> None:
            # The hint is lowered before the write (a crash after it leaves a harmless early wake-up)
            # and again after it (a timers process that raised it in between sees the new record).
            if nxt:
                pipe.zadd(keys.schedules_due_for(hint, self.partitions), {hint: int(nxt)}, lt=True)
            self.scripts.queue(pipe, "put_schedule", skeys, [mode, flow["Id"], name, rev, *pairs])
            if nxt:
                pipe.zadd(keys.schedules_due_for(hint, self.partitions), {hint: int(nxt)}, lt=True)

        results = await self.scripts.pipeline(build)
        status, value = results[1 if nxt else 0]
        status = status.decode() if isinstance(status, bytes) else str(status)
        if status != "ok":
            return (value.decode() if isinstance(value, bytes) else str(value)), {}
        return "ok", decode_pairs(value)

    async def get(self, account: str, flow_id: str, name: str) -> dict[str, str] | None:
        """A schedule's record, or None."""
        raw = await self.redis.hgetall(keys.schedule(account, flow_id, name))
        return decode_hash(raw) if raw else None

    async def delete(self, account: str, flow_id: str, name: str) -> bool:
        """Delete a schedule; False if it did not exist. Its due hint is dropped when it comes due."""
        pipe = self.redis.pipeline(transaction=True)  # both keys share the account's slot
        pipe.delete(keys.schedule(account, flow_id, name))
        pipe.zrem(keys.schedule_index(account, flow_id), name)
        gone, _ = await pipe.execute()
        return bool(gone)

    async def list(self, account: str, flow_id: str, start: str | None, limit: int) -> tuple[list[dict[str, str]], str | None]:
        """Up to `limit` schedules from name `start` on (lexical), and the name to continue from."""
        lo = f"[{start}" if start else "-"
        names = await self.redis.zrangebylex(keys.schedule_index(account, flow_id), lo, "+", start=0, num=limit + 1)
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        page, nxt = names[:limit], (names[limit] if len(names) > limit else None)
        pipe = self.redis.pipeline(transaction=False)
        for n in page:
            pipe.hgetall(keys.schedule(account, flow_id, n))
        rows = [decode_hash(raw) for raw in await pipe.execute() if raw]
        return rows, nxt

    async def purge_flow(self, account: str, flow_id: str) -> int:
        """Delete every schedule of a (deleted) flow; returns how many. Their hints drop when due."""
        index = keys.schedule_index(account, flow_id)
        names = [n.decode() if isinstance(n, bytes) else n for n in await self.redis.zrange(index, 0, -1)]
        if names:
            await self.redis.delete(*(keys.schedule(account, flow_id, n) for n in names), index)
        return len(names)
