"""Read-side queries of the console beyond the API's own: newest-first execution pages, flows by name
prefix, recent counts by status. Each reads a bounded number of index entries, never a flow's whole
execution list.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from common import keys
from common.records import EXECUTION_VIEW_FIELDS, as_str, decode_hash, view_fields
from common.store import ExecutionFilter, Store

CHUNK = 200  # index entries read per round trip
SCAN_LIMIT = 5000  # most index entries one page looks at (a sparse filter answers a short page and a cursor)
RECENT_SAMPLE = 200  # newest executions whose status the flows list counts
MINUTE_SAMPLE = 2000  # newest executions per flow the overview's per-minute chart reads
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next ('' on the last page)."""

    rows: list[dict[str, str]]
    next: str


async def flows_by_prefix(store: Store, account: str, prefix: str, start: str, limit: int) -> Page:
    """Up to `limit` of the account's flows whose name starts with `prefix`, from name `start` on."""
    index = keys.flow_index(account)
    lo = f"[{max(start, prefix)}" if (start or prefix) else "-"
    hi = f"[{prefix}\xff" if prefix else "+"
    names = [as_str(n) for n in await store.redis.zrangebylex(index, lo, hi, start=0, num=limit + 1)]
    names = [n for n in names if n.startswith(prefix)]
    page, nxt = names[:limit], (names[limit] if len(names) > limit else "")
    pipe = store.redis.pipeline(transaction=False)
    for n in page:
        pipe.hgetall(keys.flow(account, n))
    return Page([decode_hash(raw) for raw in await pipe.execute() if raw], nxt)


async def flow_name_by_id(store: Store, account: str, flow_id: str, limit: int = 2000) -> str | None:
    """The name of the account's flow with this Id (among its first `limit` flows), or None."""
    names = [as_str(n) for n in await store.redis.zrangebylex(keys.flow_index(account), "-", "+", start=0, num=limit)]
    pipe = store.redis.pipeline(transaction=False)
    for n in names:
        pipe.hget(keys.flow(account, n), "Id")
    for n, fid in zip(names, await pipe.execute(), strict=True):
        if as_str(fid) == flow_id:
            return n
    return None


async def executions_newest_first(store: Store, flow_id: str, cursor: str, limit: int, match: ExecutionFilter) -> Page:
    """A page of a flow's executions, newest first, that pass `match`; `cursor` is the name the page starts at.

    The cursor is a member of the index, so executions started meanwhile do not shift the pages.
    """
    index = keys.executions_index(flow_id)
    if cursor:
        rank = await store.redis.zrevrank(index, cursor)
        if rank is None:
            return Page([], "")
    elif match.end is not None:
        rank = await store.redis.zcount(index, f"({match.end}", "+inf")
    else:
        rank = 0
    out: list[dict[str, str]] = []
    scanned = 0
    while scanned < SCAN_LIMIT:
        chunk = await store.redis.zrevrange(index, rank, rank + CHUNK - 1, withscores=True)
        if not chunk:
            return Page(out, "")
        names = [as_str(n) for n, _ in chunk]
        pipe = store.redis.pipeline(transaction=False)
        for n in names:
            pipe.hmget(keys.execution(keys.execution_tag(flow_id, n)), *EXECUTION_VIEW_FIELDS)
        for n, (_, score), raw in zip(names, chunk, await pipe.execute(), strict=True):
            if match.begin is not None and score < match.begin:
                return Page(out, "")
            if raw[0] is None:
                continue  # expired after retention
            fields = view_fields(n, raw)
            if match.accepts(fields):
                if len(out) == limit:
                    return Page(out, n)
                out.append(fields)
        rank += len(chunk)
        scanned += len(chunk)
    more = await store.redis.zrevrange(index, rank, rank)
    return Page(out, as_str(more[0]) if more else "")


@dataclass(frozen=True)
class RecentCounts:
    """Executions of a flow started in a window: how many, and the statuses of the newest of them."""

    started: int
    sampled: int  # how many of the newest were read for `by_status` (at most RECENT_SAMPLE)
    by_status: dict[str, int]


async def recent_counts(store: Store, flow_ids: list[str], since: int) -> dict[str, RecentCounts]:
    """Per flow id: executions started since `since` (ms) and the statuses of the newest RECENT_SAMPLE."""
    pipe = store.redis.pipeline(transaction=False)
    for fid in flow_ids:
        idx = keys.executions_index(fid)
        pipe.zcount(idx, since, "+inf")
        pipe.zrevrangebyscore(idx, "+inf", since, start=0, num=RECENT_SAMPLE)
    answers = await pipe.execute()
    pipe = store.redis.pipeline(transaction=False)
    sampled: list[tuple[str, int, int]] = []
    for i, fid in enumerate(flow_ids):
        names = [as_str(n) for n in answers[2 * i + 1]]
        for n in names:
            pipe.hget(keys.execution(keys.execution_tag(fid, n)), "status")
        sampled.append((fid, int(answers[2 * i]), len(names)))
    statuses = [as_str(v) for v in await pipe.execute()] if any(n for _, _, n in sampled) else []
    out: dict[str, RecentCounts] = {}
    at = 0
    for fid, started, taken in sampled:
        counts = Counter(s for s in statuses[at : at + taken] if s)
        at += taken
        out[fid] = RecentCounts(started, taken, dict(counts))
    return out


@dataclass(frozen=True)
class Minute:
    """One minute of the overview chart."""

    start: int  # ms
    started: int
    succeeded: int
    failed: int  # Failed, TimedOut


async def per_minute(store: Store, flow_ids: list[str], now: int, minutes: int = 60) -> list[Minute]:
    """Executions started, succeeded and failed per minute over the last `minutes` (the newest MINUTE_SAMPLE per flow)."""
    first = (now // MINUTE_MS - minutes + 1) * MINUTE_MS
    pipe = store.redis.pipeline(transaction=False)
    for fid in flow_ids:
        pipe.zrevrangebyscore(keys.executions_index(fid), "+inf", first - 24 * 3600 * 1000, start=0, num=MINUTE_SAMPLE)
    tags = [keys.execution_tag(fid, as_str(n)) for fid, names in zip(flow_ids, await pipe.execute(), strict=True) for n in names]
    pipe = store.redis.pipeline(transaction=False)
    for tag in tags:
        pipe.hmget(keys.execution(tag), "status", "started", "stopped")
    started, succeeded, failed = Counter[int](), Counter[int](), Counter[int]()
    for status, start, stop in (await pipe.execute()) if tags else []:
        if start is not None and int(start) >= first:
            started[(int(start) - first) // MINUTE_MS] += 1
        if stop is not None and as_str(stop) and int(stop) >= first:
            bucket = (int(stop) - first) // MINUTE_MS
            if as_str(status) == "Succeeded":
                succeeded[bucket] += 1
            elif as_str(status) in ("Failed", "TimedOut"):
                failed[bucket] += 1
    return [Minute(first + i * MINUTE_MS, started[i], succeeded[i], failed[i]) for i in range(minutes)]


def queue_throttled(pipe: Any, now: int) -> None:
    """Count one ResourceThrottled answer in this minute's shared counter (INCR + EXPIRE on `pipe`)."""
    key = keys.throttled_minute(now // MINUTE_MS)
    pipe.incr(key)
    pipe.expire(key, keys.THROTTLED_MINUTE_TTL)


async def throttled_per_minute(redis: Any, now: int, minutes: int = 60) -> list[int]:
    """ResourceThrottled answers of all front doors per minute over the last `minutes`, oldest first."""
    last = now // MINUTE_MS
    # GETs in a pipeline, not one MGET: on a cluster the minutes' keys lie in different slots (one round trip per node)
    pipe = redis.pipeline(transaction=False)
    for m in range(last - minutes + 1, last + 1):
        pipe.get(keys.throttled_minute(m))
    raw = await pipe.execute()
    return [int(v) if v is not None else 0 for v in raw]
