"""The async store the front door uses: flows, definitions and executions in Redis (redis.asyncio)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from common import keys, runcount
from common.claims import Claim, PendingClaim, queue_claim
from common.interpreter.model import HistoryEvent
from common.lineage import adoption_refused, depth_of, orphan_event, queue_adopt, queue_stops, stop_tree_async
from common.purestart import Ended
from common.records import (
    EXECUTION_VIEW_FIELDS,
    as_str,
    decode_hash,
    decode_history,
    decode_pairs,
    dumps,
    view_fields,
)
from common.redisclients import is_cluster
from common.scripts import Scripts
from common.settings import Settings
from common.versions import VersionStore

LIST_CHUNK = 200  # index entries read per round trip by list_executions
LIST_SCAN_LIMIT = 10000  # most index entries one ListExecutions call looks at
DEFINITIONS_CACHED = 1024  # definition texts a store keeps (by content hash: they never change)
# What StartExecution needs of a flow, read fresh for every start; the definition text comes by DefId.
FLOW_HEAD = ("Id", "Name", "DefId", "ExecutionMode", "Environment")


@dataclass(frozen=True)
class ExecutionFilter:
    """ListExecutions' filters; empty ones match everything."""

    status: str = ""
    prefix: str = ""
    qualifier: str = ""
    begin: int | None = None  # started at or after (ms)
    end: int | None = None  # started at or before (ms)

    def accepts(self, fields: dict[str, str]) -> bool:
        """Whether an execution's view fields pass every filter."""
        return (
            (not self.status or fields.get("status") == self.status)
            and fields.get("name", "").startswith(self.prefix)
            and (not self.qualifier or fields.get("qual") == self.qualifier)
        )


class Store:
    """Flows and executions for one account-aware front door."""

    def __init__(self, redis: Any, settings: Settings, runner: Any = None) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts(redis)
        # Runs StartExecution's claim pipeline: Scripts.pipeline, or one with the same meaning that
        # batches concurrent callers (api/batching.py PipelineBatcher).
        self.runner = runner or self.scripts
        self.versions = VersionStore(redis, self.scripts)
        self._definitions: dict[str, str] = {}  # def id -> text; immutable, so cached (the newest DEFINITIONS_CACHED)

    # ------------------------------------------------------------ definitions

    async def definition(self, def_id: str) -> str:
        """The text of a stored definition."""
        text = self._definitions.get(def_id)
        if text is None:
            raw = await self.redis.get(keys.definition(def_id))
            text = raw.decode("utf-8") if isinstance(raw, bytes) else (raw or "")
            if text:
                if len(self._definitions) >= DEFINITIONS_CACHED:
                    del self._definitions[next(iter(self._definitions))]  # the oldest entry
                self._definitions[def_id] = text
        return text

    # ------------------------------------------------------------ flows

    async def create_flow(self, account: str, name: str, def_id: str, definition: str, fields: dict[str, str]) -> bool:
        """Create a flow; False if the name is taken in the account."""
        pairs = [x for kv in fields.items() for x in kv]
        def build(pipe: Any) -> None:
            pipe.set(keys.definition(def_id), definition)
            self.scripts.queue(pipe, "create_flow", [keys.flow(account, name), keys.flow_index(account)], [name, *pairs])

        _, created = await self.scripts.pipeline(build)
        return bool(created)

    async def get_flow(self, account: str, name: str) -> dict[str, str] | None:
        """A flow's fields, or None."""
        raw = await self.redis.hgetall(keys.flow(account, name))
        return decode_hash(raw) if raw else None

    def queue_flow_head(self, pipe: Any, account: str, name: str) -> None:
        """Queue the read of a flow's FLOW_HEAD fields (one HMGET) on a pipeline; see flow_for_start."""
        pipe.hmget(keys.flow(account, name), *FLOW_HEAD)

    async def flow_for_start(self, account: str, name: str, head: list[Any]) -> dict[str, str] | None:
        """A flow as StartExecution uses it (FLOW_HEAD and Definition), from the answer of queue_flow_head;
        None if there is no such flow. The definition text comes from the cache by DefId (read once)."""
        if head[0] is None:
            return None
        flow = dict(zip(FLOW_HEAD, (as_str(v) for v in head), strict=True))
        text = await self.definition(flow["DefId"])
        if not text:  # no definition stored under its id (not written by this version): the whole flow
            return await self.get_flow(account, name)
        flow["Definition"] = text
        return flow

    async def update_flow(
        self, account: str, name: str, fields: dict[str, str], definition: tuple[str, str] | None
    ) -> dict[str, str] | None:
        """Change a flow's fields (and definition: (def id, text)); None if it does not exist."""
        pairs = [x for kv in fields.items() for x in kv]
        def build(pipe: Any) -> None:
            if definition is not None:
                pipe.set(keys.definition(definition[0]), definition[1])
            self.scripts.queue(pipe, "update_flow", [keys.flow(account, name)], pairs)

        result = (await self.scripts.pipeline(build))[-1]
        return decode_pairs(result) if result else None

    async def delete_flow(self, account: str, name: str) -> bool:
        """Delete a flow; False if it did not exist."""
        gone = await self.scripts.delete_flow(keys=keys.flow_keys(account, name), args=[name])
        return bool(gone)

    async def list_flows(self, account: str, start: str | None, limit: int) -> tuple[list[dict[str, str]], str | None]:
        """Up to `limit` flows from name `start` on (lexical), and the name to continue from."""
        lo = f"[{start}" if start else "-"
        names = await self.redis.zrangebylex(keys.flow_index(account), lo, "+", start=0, num=limit + 1)
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        page, nxt = names[:limit], (names[limit] if len(names) > limit else None)
        pipe = self.redis.pipeline(transaction=False)
        for n in page:
            pipe.hgetall(keys.flow(account, n))
        flows = [decode_hash(raw) for raw in await pipe.execute() if raw]
        return flows, nxt

    # ------------------------------------------------------------ executions

    async def claim_execution(
        self,
        *,
        account: str,
        flow: dict[str, str],
        name: str,
        raw_input: str,
        input_obj: dict[str, Any],
        def_id: str,
        qualifier: str,
        callback: str,
        now: int,
        version: str = "",
        trace: str = "",
        depth: int = 0,
        woken: bool = False,
        ended: Ended | None = None,
    ) -> Claim:
        """StartExecution's claim: one round trip (wake-up, index entry, atomic claim script, running count).

        `woken`: the wake-up (keys.pending_start) was written in an earlier round trip (the admission's),
        so none is queued here. Otherwise it is queued before the claim in this pipeline, which orders
        them on one server only: on a cluster (the pieces go to several nodes at once) the claim could
        land while the wake-up does not, so it is written first, in a round trip of its own.

        `ended`: the execution was run to its end at its start (common/purestart.py): the claim writes it
        ended; it needs no wake-up and never counts as running. A wake-up the admission wrote for it anyway
        is removed once the claim is won (not before: a claim lost to a running execution of that name
        leaves that execution's own wake-up, the same member, alone).
        """
        pending: list[PendingClaim] = []
        cluster = is_cluster(self.redis)
        counts = ended is None  # an execution written ended never counts as running

        def build(pipe: Any) -> None:
            pending[:] = [
                queue_claim(
                    self.scripts, pipe, self.settings, account=account, flow=flow, name=name, raw_input=raw_input,
                    input_obj=input_obj, def_id=def_id, now=now, qualifier=qualifier, version=version, callback=callback, trace=trace,
                    depth=depth, wake=not woken and not cluster, ended=ended,
                )
            ]  # fmt: skip
            if counts:  # in the same round trip (Scripts.pipeline runs non-script commands once), given back below if lost
                pipe.incr(counted)

        tag = keys.execution_tag(flow["Id"], name)
        counted = runcount.key_for(account, tag, self.settings.running_shards)  # the shard its end gives back
        if cluster and not woken and counts:
            await self.redis.zadd(keys.wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})
        try:
            results = await self.runner.pipeline(build)  # fills `pending` first
        except Exception:
            # The claim's answer is lost: give the count back (a claim that landed anyway is driven by
            # its wake-up, and its end gives the count back once more: the cap errs on the open side).
            if counts:
                with contextlib.suppress(Exception):
                    await self.redis.decr(counted)
            raise
        claim = pending[0].outcome(results)
        if not counts:
            if claim.created and woken:  # the admission's wake-up guards nothing now
                pending_start = keys.pending_start(account, flow["Name"], name)
                await self.redis.zrem(keys.wake_for(pending_start, self.settings.partitions), pending_start)
        elif not claim.created:
            await self.redis.decr(counted)  # nothing started: give the running count back
        return claim

    async def read_execution(self, flow_id: str, name: str, watch: bool | str = False) -> dict[str, str] | None:
        """The execution's view fields; with watch, a still-running one will publish its end (a str:
        the watch mark, how: api/waiters.py)."""
        tag = keys.execution_tag(flow_id, name)
        mark = watch if isinstance(watch, str) else "1" if watch else "0"
        raw = await self.scripts.watch(keys=[keys.execution(tag)], args=[mark, *EXECUTION_VIEW_FIELDS])
        if raw is None:
            return None
        return view_fields(name, raw)

    async def stop(self, flow_id: str, name: str, event: dict[str, Any], now: int) -> tuple[int, list[str]]:
        """StopExecution: queue the StopRequested event for a running execution and, at once, stop every
        child it waits for, theirs too (common/lineage.py); (1 stopping | 0 ended | -1 missing, the
        executions whose drive must be published)."""
        tag = keys.execution_tag(flow_id, name)
        return await stop_tree_async(self.scripts, tag, event, now, self.settings.wake_after_ms, self.settings.partitions)

    async def append_event(self, flow_id: str, name: str, event: dict[str, Any], now: int) -> tuple[int, str]:
        """Append an inbox event to a running execution: (1 appended | 0 ended | -1 missing, status)."""
        tag = keys.execution_tag(flow_id, name)
        def build(pipe: Any) -> None:
            pipe.zadd(keys.wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})
            self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [dumps(event)])

        _, result = await self.scripts.pipeline(build)
        return int(result[0]), (as_str(result[1]) if len(result) > 1 else "")

    async def list_executions(
        self, flow_id: str, start: str | None, limit: int, match: ExecutionFilter | None = None
    ) -> tuple[list[dict[str, str]], str | None]:
        """Executions of a flow in start order from name `start` that pass `match`, and the name to continue from.

        The index is read in chunks and at most LIST_SCAN_LIMIT entries per call: a sparse filter may
        answer a short page with a NextToken, which the API allows.
        """
        match = match or ExecutionFilter()
        index = keys.executions_index(flow_id)
        if start:
            rank = await self.redis.zrank(index, start)
            if rank is None:
                return [], None
        elif match.begin is not None:
            rank = await self.redis.zcount(index, "-inf", f"({match.begin}")
        else:
            rank = 0
        out: list[dict[str, str]] = []
        stale: list[str] = []
        scanned = 0
        while scanned < LIST_SCAN_LIMIT:
            chunk = await self.redis.zrange(index, rank, rank + LIST_CHUNK - 1, withscores=True)
            if not chunk:
                break
            pipe = self.redis.pipeline(transaction=False)
            names = [as_str(n) for n, _ in chunk]
            for n in names:
                pipe.hmget(keys.execution(keys.execution_tag(flow_id, n)), *EXECUTION_VIEW_FIELDS)
            for n, (_, score), raw in zip(names, chunk, await pipe.execute(), strict=True):
                if match.end is not None and score > match.end:
                    return out[:limit], None
                if raw[0] is None:  # expired after retention, or a claim that never completed
                    stale.append(n)
                    continue
                fields = view_fields(n, raw)
                if match.accepts(fields):
                    if len(out) == limit:
                        await self._drop_stale(index, stale)
                        return out, n
                    out.append(fields)
            rank += len(chunk)
            scanned += len(chunk)
        await self._drop_stale(index, stale)
        if scanned >= LIST_SCAN_LIMIT:  # more may match further on: continue from there
            nxt = await self.redis.zrange(index, rank, rank)
            return out, (as_str(nxt[0]) if nxt else None)
        return out, None

    async def sweep_index(self, flow_id: str, now: int, retention_ms: int, limit: int = LIST_CHUNK) -> int:
        """Drop from the flow's executions index up to `limit` of its oldest names whose record is gone (expired
        after the retention period); how many. Only names started more than `retention_ms` ago are looked at (a
        record expires that long after its end, so a younger one is there, or its claim is still on its way),
        and an execution still running past that stays. ListExecutions drops what it reads too; this bounds
        the index of a flow nobody lists (the front door calls it now and then, OPENFNF_INDEX_SWEEP_EVERY)."""
        index = keys.executions_index(flow_id)
        old = [as_str(n) for n in await self.redis.zrangebyscore(index, "-inf", now - retention_ms, start=0, num=limit)]
        if not old:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for n in old:
            pipe.exists(keys.execution(keys.execution_tag(flow_id, n)))
        gone = [n for n, there in zip(old, await pipe.execute(), strict=True) if not there]
        await self._drop_stale(index, gone)
        return len(gone)

    async def _drop_stale(self, index: str, names: list[str]) -> None:
        if names:
            await self.redis.zrem(index, *names)

    async def task_state(self, tag: str, task_id: str) -> str:
        """'waiting', 'done' or '' for a task of an execution (callback tasks only)."""
        return as_str(await self.redis.hget(keys.tasks(tag), task_id))

    async def waiting_task(self, tag: str, task_id: str) -> tuple[str, int]:
        """A callback task's state ('waiting', 'done' or '') and its execution's nesting depth, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.tasks(tag), task_id)
        pipe.hget(keys.execution(tag), "depth")
        state, depth = await pipe.execute()
        return as_str(state), depth_of(depth)

    async def adopt(self, parent_tag: str, task_id: str, child_tag: str, now: int) -> bool:
        """The parent's task `task_id` waits for a child started with its token: cancelling the task
        (a stop of the parent...) stops the child (common/lineage.py). True when the task no longer
        waited and the child was stopped here."""
        answer = (await self.scripts.pipeline(lambda pipe: queue_adopt(self.scripts, pipe, parent_tag, task_id, child_tag)))[0]
        status = adoption_refused(answer)
        if not status:
            return False
        _, parent_name = keys.split_tag(parent_tag)
        flow = as_str(await self.redis.hget(keys.execution(parent_tag), "flow"))
        event = orphan_event(flow, parent_name, status)
        await self.scripts.pipeline(lambda pipe: queue_stops(self.scripts, pipe, [child_tag], event, now, self.settings.wake_after_ms, self.settings.partitions))
        return True

    async def history(self, flow_id: str, name: str) -> list[HistoryEvent]:
        """Every history event of an execution, in order."""
        tag = keys.execution_tag(flow_id, name)
        return decode_history(await self.redis.lrange(keys.history(tag), 0, -1))
