"""The MapRun actor (distributed Map, issue 16): its start, its driver, its children's ends, its abort.

A MapRun has its own record and inbox (common/keys.py maprun_*), driven by one fenced driver at a
time like an execution. A drive: take the lease (maprun_acquire.lua); on the first drive count the
items (streamed from the store, nothing kept: Total is exact from then on); fail the run if failed
items pass a threshold; otherwise start children up to the concurrency, reading just the items they
need from the reader's cursor. Starting is two-phase so no crash loses or doubles one: a fenced
commit reserves the children (their items move to Running, the cursor moves on, and the children to
claim are recorded), then each child is claimed under its deterministic name (claiming again finds
it), then the reservation is cleared. A child's end is counted by maprun_child_end.lua, which also
appends ChildEnded to the run's inbox and wakes the driver; so the counts DescribeMapRun reads always
add up to Total. When every item has ended, the results go back to the parent's task token, as a
JSON array or through the ResultWriter, and the run ends.

The safety net: every live run sits in keys.maprun_wake (partitioned); the timers drive a run whose deadline
passed (a drive message lost with a killed worker), and each drive arms it again.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from redis.exceptions import RedisError

from common import jsonlimits, keys, runcount
from common.claims import queue_express_timeout
from common.faults import fault_point
from common.fdl import FlowDef, parse_definition
from common.fdl.errors import ExpressionError, FdlError
from common.fdl.expressions import compile_constructor
from common.fdl.functions import Env
from common.interpreter import Decision, Status, advance
from common.interpreter.model import Errors, Limits
from common.mapruns import (
    ABORTED,
    ITEM_READER_FAILED,
    ITEMS_EXCEEDED,
    LIMIT_EXCEEDED,
    TERMINAL,
    TOLERANCE_EXCEEDED,
    child_callback,
    child_name,
    drive_message,
    parse_callback,
    run_name,
    run_tag,
    tolerance_exceeded,
)
from common.objectstore import ObjectStore, StoreError
from common.records import as_str, decode_pairs, definition_id, dumps, encode_history_chunk, new_execution_fields
from common.reports import failed_event, report_keys, succeeded_event
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import drive_messages
from common.tokens import InvalidToken, parse_token
from worker.itemreader import ReaderError, count, iterate
from worker.mapresults import ENDED, NotSettled, Results, RunFailed
from worker.objectstores import make_store
from worker.outcomes import Outcome

logger = logging.getLogger(__name__)

MAX_ROUNDS = 100
INTERNAL_ERROR = "FnF.InternalError"
REFILL_DELAY_MS = 100  # a child's end that does not drive its run at once has it driven within this (plus the timers' poll)
PURE_TYPES = frozenset({"pass", "choice", "succeed", "fail", "parallel", "map"})  # end in one decision


def push_drives(broker: Any, settings: Settings, tags: list[str]) -> None:
    """Drive messages for these executions (worker/dispatch.py's, without importing it: it imports this)."""
    if tags:
        broker.lpush(settings.drive_queue, *drive_messages(tags, settings.drive_queue, settings.drive_batch))


def now_ms() -> int:
    """The clock of the MapRun driver."""
    return int(time.time() * 1000)


class MapRuns:
    """Starts and drives MapRuns (sync redis-py clients for state and broker)."""

    def __init__(self, state: Any, broker: Any, settings: Settings, store: ObjectStore | None = None) -> None:
        self.state = state
        self.broker = broker
        self.settings = settings
        self.scripts = Scripts(state)
        self.store = store if store is not None else make_store(settings)
        self._constructors: dict[str, Any] = {}
        self.results = Results(state, self.store, settings)
        self._pure: dict[str, FlowDef | None] = {}  # children's def id -> its flow when all its states are pure
        self.limits = Limits(max_state_bytes=settings.max_state_bytes, max_history_events=settings.max_history_events)

    # ------------------------------------------------------------ start (the Map's activity)

    def publish(self, tags: list[str]) -> None:
        """Queue a drive of these MapRuns on the activities queue, at the end served next (RPUSH: kombu
        pops from the right): a MapRun's drive refills hundreds of children, and it must not wait behind
        the function calls of the children it started."""
        if tags:
            queue = self.settings.activity_queue
            self.broker.rpush(queue, *(drive_message(t, queue) for t in tags))

    def concurrency(self, wanted: Any) -> int:
        """A concurrency within the quota (absent or 0: the default)."""
        value = int(wanted or 0) or self.settings.maprun_default_concurrency
        return max(1, min(value, self.settings.maprun_max_concurrency))

    def start(self, parent_tag: str, command: dict[str, Any]) -> Outcome:
        """Create the MapRun of a Map's attempt (idempotent: a redelivered command finds its run)."""
        params = command.get("params") or {}
        flow_id, parent_name = keys.split_tag(parent_tag)
        previous = params.get("redrive")
        if isinstance(previous, dict):  # the parent was redriven: its Map goes on with the MapRun it had
            outcome = self._continue(parent_tag, command, previous)
            if outcome is not None:
                return outcome
        name = run_name(parent_tag, str(command["id"]))
        tag = run_tag(flow_id, name)
        acct, flow = (as_str(v) for v in self.state.hmget(keys.execution(parent_tag), "acct", "flow"))
        definition = str(params.get("definition") or "")
        def_id = definition_id(definition)
        spec = {k: v for k, v in params.items() if k != "definition"}
        now = now_ms()
        tcount, tpct = params.get("tcount"), params.get("tpct")
        fields = [
            "parent", parent_tag, "pname", parent_name, "aid", str(command["id"]), "token", str(command.get("token") or ""),
            "acct", acct, "flow", flow, "fid", flow_id, "name", name, "status", "Pending", "started", str(now),
            "conc", str(self.concurrency(params.get("concurrency"))),
            "tcount", "" if tcount is None else str(int(tcount)), "tpct", "" if tpct is None else repr(float(tpct)),
            "mode", str(params.get("mode") or "Standard"), "defid", def_id, "total", "0", "running", "0", "kids", "0",
            "succeeded", "0", "failed", "0", "aborted", "0", "next", "0", "pos", "0", "cursor", "", "spec", dumps(spec),
        ]  # fmt: skip

        def build(pipe: Any) -> None:
            pipe.set(keys.definition(def_id), definition, nx=True)
            pipe.sadd(keys.execution_mapruns(parent_tag), tag)
            pipe.expire(keys.execution_mapruns(parent_tag), self.settings.retention_days * 86400)
            pipe.zadd(keys.maprun_wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})
            self.scripts.queue(pipe, "claim", [keys.maprun(tag), keys.maprun_inbox(tag)], [dumps({"t": "Start"}), 0, *fields])

        if self._cancelled(parent_tag, str(command["id"])):  # the parent left the Map before its run began
            return Outcome.failed(ABORTED, "the parent execution no longer waits for this MapRun")
        if not self.state.exists(keys.maprun(tag)) and self._open_runs(parent_tag) >= self.settings.maprun_max_open:
            limit = self.settings.maprun_max_open
            return Outcome.failed(LIMIT_EXCEEDED, f"the execution has {limit} MapRuns open already (OPENFNF_MAPRUN_MAX_OPEN)")
        self.scripts.pipeline_sync(build)
        if self._cancelled(parent_tag, str(command["id"])):  # ... or while it was being created: abort it
            abort_runs(self.scripts, self.broker, self.settings, parent_tag, [str(command["id"])], now)
        self.publish([tag])
        return Outcome.ok({"MapRunName": name})

    def _continue(self, parent_tag: str, command: dict[str, Any], previous: dict[str, Any]) -> Outcome | None:
        """Reopen the MapRun a redriven parent's Map had, for this new attempt; None if it is gone (a new run starts).

        A Redrive event reaches the run's inbox (maprun_update.lua takes it even when the run is over,
        and undoes its keys' TTL); the driver reopens the run once its children still stopping have
        ended (`_reopen`). The record's `aid` is the new activity's at once, so aborting that activity
        finds the run (abort_runs).
        """
        flow_id, _ = keys.split_tag(parent_tag)
        aid = str(command["id"])
        name = str(previous.get("name") or "") or (run_name(parent_tag, str(previous["act"])) if previous.get("act") else "")
        tag = run_tag(flow_id, name)
        if not name or as_str(self.state.hget(keys.maprun(tag), "parent")) != parent_tag:
            return None
        if self._cancelled(parent_tag, aid):
            return Outcome.failed(ABORTED, "the parent execution no longer waits for this MapRun")
        now = now_ms()
        event = dumps({"t": "Redrive", "aid": aid, "token": str(command.get("token") or "")})
        run_keys = [keys.maprun(tag), keys.maprun_inbox(tag), keys.maprun_children(tag), keys.maprun_running(tag)]

        def build(pipe: Any) -> None:
            pipe.sadd(keys.execution_mapruns(parent_tag), tag)
            pipe.expire(keys.execution_mapruns(parent_tag), self.settings.retention_days * 86400)
            pipe.zadd(keys.maprun_wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})
            self.scripts.queue(pipe, "maprun_update", run_keys, [event, now, self.settings.wake_after_ms, "aid", aid, "rq", "1"])

        if int(self.scripts.pipeline_sync(build)[-1][0]) == -1:
            return None
        if self._cancelled(parent_tag, aid):
            abort_runs(self.scripts, self.broker, self.settings, parent_tag, [aid], now)
        self.publish([tag])
        return Outcome.ok({"MapRunName": name})

    def _open_runs(self, parent_tag: str) -> int:
        """How many MapRuns of the execution are open; ended (or expired) ones found in its set leave it."""
        tags = [as_str(t) for t in self.state.smembers(keys.execution_mapruns(parent_tag))]
        if not tags:
            return 0
        pipe = self.state.pipeline(transaction=False)
        for t in tags:
            pipe.hget(keys.maprun(t), "status")
        ended = [t for t, status in zip(tags, pipe.execute(), strict=True) if status is None or as_str(status) in TERMINAL]
        if ended:
            self.state.srem(keys.execution_mapruns(parent_tag), *ended)
        return len(tags) - len(ended)

    def _cancelled(self, parent_tag: str, activity_id: str) -> bool:
        """Whether the parent cancelled the Map's activity (worker/dispatch.py marks its task `done`)."""
        return as_str(self.state.hget(keys.tasks(parent_tag), activity_id)) == "done"

    # ------------------------------------------------------------ the driver

    def drive(self, tag: str) -> str:
        """Advance one MapRun as far as its inbox allows; what happened (for logs and tests)."""
        outcome = "idle"
        left = 0
        for _ in range(MAX_ROUNDS):
            got = self.scripts.maprun_acquire(keys=keys.maprun_keys(tag)[:3], args=[self.settings.lease_ms])
            token = int(got[0])
            if token == -1:
                self.state.zrem(keys.maprun_wake_for(tag, self.settings.partitions), tag)
                return "missing"
            if token == 0:
                return "busy"
            fields = decode_pairs(got[1])
            inbox = [json.loads(as_str(e)) for e in got[2]]
            try:
                left = self._round(tag, token, fields, inbox)
            except RedisError:
                raise  # the store is away: the safety net drives the run again
            except Exception as exc:  # a bug must end the run (and fail its Map), not have it driven for ever
                logger.exception("MapRun %s failed in its driver; ending it as Failed", tag)
                self._stop_children(tag, fields)
                left = self._end(tag, token, len(inbox), fields, "Failed", INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
            outcome = "fenced" if left < 0 else "driven"
            if left <= 0:
                break
        else:
            self.publish([tag])  # rounds left over: a fresh task goes on (the inbox's mark was cleared)
        return outcome

    def _round(self, tag: str, token: int, fields: dict[str, str], inbox: list[dict[str, Any]]) -> int:
        consumed = len(inbox)
        redrive = [i for i, e in enumerate(inbox) if isinstance(e, dict) and e.get("t") == "Redrive" and e.get("aid") != fields.get("raid")]
        if redrive:
            return self._reopen(tag, token, fields, inbox, redrive[0])
        if fields.get("status") in TERMINAL:
            left = self._commit(tag, token, consumed, {"rq": "0"} if fields.get("rq") == "1" else {}, [], release=True)
            if left >= 0 and any(isinstance(e, dict) and e.get("t") == "Redrive" for e in inbox):
                self._expire(tag, fields)  # a repeated Redrive (a redelivered start) took the TTL away again
            return left
        if any(isinstance(e, dict) and e.get("t") == "Abort" for e in inbox):
            self._stop_children(tag, fields)
            return self._end(tag, token, consumed, fields, "Aborted", ABORTED, "the parent execution no longer waits for this MapRun")
        self.state.zadd(keys.maprun_wake_for(tag, self.settings.partitions), {tag: now_ms() + self.settings.wake_after_ms})
        spec = json.loads(fields.get("spec") or "{}")
        updates: dict[str, str] = {}
        if fields.get("claiming"):  # a drive died between reserving children and claiming them
            self._claim(tag, fields, json.loads(fields["claiming"]))
            updates["claiming"] = ""
            fields["claiming"] = ""
        if fields.get("redriving"):  # ... or between reserving children to redrive and redriving them
            self._redrive_children(tag, fields, json.loads(fields["redriving"]))
            updates["redriving"] = ""
            fields["redriving"] = ""
        try:
            if fields.get("status") == "Pending":
                total = self._count(spec)
                updates.update(status="Running", total=str(total))
                fields.update(updates)
            if tolerance_exceeded(fields):
                self._stop_children(tag, fields)
                cause = f"{fields.get('failed')} of {fields.get('total')} items failed, more than the MapRun tolerates"
                return self._end(tag, token, consumed, fields, "Failed", TOLERANCE_EXCEEDED, cause, updates)
            free = int(fields.get("conc") or 1) - int(fields.get("kids") or 0)
            scan, scan_end = int(fields.get("rscan") or 0), int(fields.get("rend") or 0)
            if scan < scan_end:  # reopened by a redrive: the children that did not succeed run again first
                if free <= 0:
                    return self._commit(tag, token, consumed, updates, [], release=True)
                redo, scan = self._unsucceeded(fields, spec, scan, scan_end, free)
                updates["rscan"] = str(scan)
                if redo:
                    updates["redriving"] = dumps(redo)
                    if self._commit(tag, token, 0, updates, [(i, n) for i, n in redo], release=False) < 0:
                        return -1
                    fault_point(self.settings, "maprun.after_reserve_redrive")
                    self._redrive_children(tag, fields, redo)
                    updates = {"redriving": ""}
                left = self._commit(tag, token, consumed, updates, [], release=True)
                more = scan < scan_end or int(fields.get("pos") or 0) < int(fields.get("total") or 0)
                return max(left, 1) if left >= 0 and more and len(redo) < free else left
            pos, total = int(fields.get("pos") or 0), int(fields.get("total") or 0)
            if free > 0 and pos < total:
                children, cursor, pos, nxt, total = self._next_children(spec, fields, free)
                updates.update(pos=str(pos), next=str(nxt), total=str(total), cursor=dumps(cursor) if cursor is not None else "")
                if children:
                    updates["claiming"] = dumps(children)
                    if self._commit(tag, token, 0, updates, [(c[0], c[1]) for c in children], release=False) < 0:
                        return -1
                    fault_point(self.settings, "maprun.after_reserve")
                    self._claim(tag, fields, children)
                    updates = {"claiming": ""}
                fields.update(pos=str(pos), total=str(total))
                if children or pos < total:
                    left = self._commit(tag, token, consumed, updates, [], release=True)
                    room = len(children) < free and pos < total  # a page ended the round: go on at once
                    return max(left, 1) if left >= 0 and room and children else left
            if int(fields.get("pos") or 0) >= int(fields.get("total") or 0) and int(fields.get("kids") or 0) == 0:
                output = self.results.collect(fields, spec)
                return self._end(tag, token, consumed, fields, "Succeeded", "", "", updates, output)
        except NotSettled as exc:  # the child's re-drive ends it; the safety net drives this run again
            logger.info("%s; the MapRun ends on a later drive", exc)
        except RunFailed as exc:
            self._stop_children(tag, fields)
            return self._end(tag, token, consumed, fields, "Failed", exc.error, exc.cause, updates)
        return self._commit(tag, token, consumed, updates, [], release=True)

    # ------------------------------------------------------------ redrive (issue 18)

    def _reopen(self, tag: str, token: int, fields: dict[str, str], inbox: list[dict[str, Any]], at: int) -> int:
        """The parent was redriven and its Map goes on with this run (`_continue`): reopen it.

        A run still going (an Abort not yet seen: it ends first) takes the new activity's token. A run
        that is over waits until its children still stopping have ended (maprun_child_end.lua drives it
        then), and reopens: Running again, its failed and aborted items back to Pending, and a scan of
        its children (`rscan` up to `rend`) that redrives those that did not succeed before the items
        never started are read. The items that succeeded keep their children and their results.
        """
        event = inbox[at]
        status = fields.get("status")
        if status not in TERMINAL:
            if any(isinstance(e, dict) and e.get("t") == "Abort" for e in inbox[:at]):
                self._stop_children(tag, fields)
                left = self._end(tag, token, at, fields, "Aborted", ABORTED, "the parent execution no longer waits for this MapRun")
                return 1 if left == 0 else left  # round again: the Redrive is next
            updates = {"token": str(event.get("token") or ""), "raid": str(event.get("aid") or ""), "rq": "0"}
            return self._commit(tag, token, at + 1, updates, [], release=True)
        if int(fields.get("kids") or 0) > 0 and not self._settle_running(tag, fields):
            logger.info("MapRun %s reopens for a redrive once its children still stopping have ended", fields.get("name"))
            self._commit(tag, token, 0, {}, [], release=True)
            return 0  # the last child to end drives the run again (maprun_child_end.lua, `rq`)
        now = now_ms()
        started = int(fields.get("next") or 0) > 0  # a run that never started a child counts its items again
        updates = {
            "status": "Running" if started else "Pending", "failed": "0", "aborted": "0", "stopped": "", "error": "", "cause": "",
            "token": str(event.get("token") or ""), "raid": str(event.get("aid") or ""), "rq": "0",
            "rscan": "0", "rend": fields.get("next") or "0", "redrives": str(int(fields.get("redrives") or 0) + 1),
        }  # fmt: skip
        pipe = self.state.pipeline(transaction=False)
        for key in (keys.maprun(tag), keys.maprun_inbox(tag), keys.maprun_children(tag), keys.maprun_running(tag)):
            pipe.persist(key)  # the end set their retention TTL
        pipe.zadd(keys.maprun_wake_for(tag, self.settings.partitions), {tag: now + self.settings.wake_after_ms})
        pipe.sadd(keys.execution_mapruns(fields.get("parent", "")), tag)
        pipe.execute()
        left = self._commit(tag, token, at + 1, updates, [], release=True)
        return max(left, 1) if left >= 0 else left

    def _settle_running(self, tag: str, fields: dict[str, str]) -> bool:
        """Count the children of an ended run that are still counted running but have ended (or were never
        created: reserved by a drive that died, then the run ended); whether none is left running."""
        indexes = [int(as_str(i)) for i in self.state.hkeys(keys.maprun_running(tag))]
        if not indexes:
            return True
        fid, name = fields.get("fid", ""), fields.get("name", "")
        pipe = self.state.pipeline(transaction=False)
        for index in indexes:
            pipe.hget(keys.execution(keys.execution_tag(fid, child_name(name, index))), "status")
        ended = [(i, as_str(st) or "Stopped") for i, st in zip(indexes, pipe.execute(), strict=True) if st is None or as_str(st) in ENDED]
        if ended:
            self._count_ends(tag, ended, now_ms())
        return len(ended) == len(indexes)

    def _unsucceeded(self, fields: dict[str, str], spec: dict[str, Any], scan: int, end: int, free: int) -> tuple[list[tuple[int, int]], int]:
        """Up to `free` children from index `scan` (below `end`) that did not succeed, with their items; where the scan goes on."""
        fid, name = fields.get("fid", ""), fields.get("name", "")
        wanted = ("status", "input") if spec.get("batch") else ("status",)
        redo: list[tuple[int, int]] = []
        limit = scan + self.settings.maprun_page_items * 10
        while scan < end and scan < limit and len(redo) < free:
            last = min(end, scan + self.settings.maprun_page_items)
            pipe = self.state.pipeline(transaction=False)
            for index in range(scan, last):
                pipe.hmget(keys.execution(keys.execution_tag(fid, child_name(name, index))), *wanted)
            for index, raw in zip(range(scan, last), pipe.execute(), strict=True):
                scan = index + 1
                if as_str(raw[0]) == "Succeeded":
                    continue
                redo.append((index, _items_in(as_str(raw[1])) if len(raw) > 1 else 1))
                if len(redo) >= free:
                    break
        return redo, scan

    def _redrive_children(self, tag: str, fields: dict[str, str], redo: list[Any]) -> None:
        """Redrive these reserved children (again after a crash: a child found Running was reopened already).

        A child is reopened in place as RedriveExecution would (reopen.lua): it keeps its name, its
        history and what succeeded in it. One that cannot be (it succeeded meanwhile, or has no record
        left, or no redrive left) is counted at once with the status it has.
        """
        if not redo:
            return
        fid, name, acct = fields.get("fid", ""), fields.get("name", ""), fields.get("acct", "")
        express = fields.get("mode") == "Express"
        now = now_ms()
        wake = self.settings.wake_after_ms
        ctags = [keys.execution_tag(fid, child_name(name, int(index))) for index, _ in redo]
        event = dumps({"t": "Redriven"})
        at: list[int] = []

        def build(pipe: Any) -> None:
            for ctag in ctags:
                pipe.zadd(keys.wake_for(ctag, self.settings.partitions), {ctag: now + wake})
                at.append(len(pipe))
                self.scripts.queue(pipe, "reopen", [*keys.execution_keys(ctag), keys.tasks(ctag)],
                                   [event, self.settings.max_redrives, now, self.settings.max_history_events])  # fmt: skip
                if express:
                    queue_express_timeout(pipe, ctag, now, self.settings.express_timeout_seconds, self.settings.partitions)

        results = self.scripts.pipeline_sync(build)
        reopened: list[str] = []
        ended: list[tuple[int, str]] = []
        for (index, _), ctag, i in zip(redo, ctags, at, strict=True):
            code = int(results[i][0])
            if code == 1:
                reopened.append(ctag)
            elif code == 0 and as_str(results[i][1]) == "Running":
                continue  # reopened before a crash: it ends as any child does
            elif code == 0:
                ended.append((int(index), as_str(results[i][1])))
            else:
                logger.warning("MapRun %s: child %s cannot be redriven (reopen.lua answered %s); it counts as failed", name, ctag, code)
                ended.append((int(index), "Failed"))
        if reopened and acct:
            pipe = self.state.pipeline(transaction=False)
            for _ in reopened:
                pipe.incr(keys.running(acct))  # running again: the driver gives it back when the child ends
            pipe.execute()
        if ended:
            self._count_ends(tag, ended, now)
        push_drives(self.broker, self.settings, reopened)

    def _commit(self, tag: str, token: int, consumed: int, updates: dict[str, str], starts: list[tuple[int, int]], release: bool) -> int:
        pairs = [x for k, v in updates.items() for x in (k, v)]
        args: list[Any] = [token, consumed, "1" if release else "0", len(updates), *pairs]
        for index, items in starts:
            args += [index, items]
        left = int(self.scripts.maprun_commit(keys=keys.maprun_keys(tag), args=args))
        if left < 0:
            logger.warning("lost the lease of MapRun %s while driving it", tag)
        return left

    def _end(self, tag: str, token: int, consumed: int, fields: dict[str, str], status: str, error: str, cause: str,
             updates: dict[str, str] | None = None, output: Any = None) -> int:  # fmt: skip
        """End the run: report to the parent's task first (a repeat is TaskAlreadyCompleted), then record it."""
        now = now_ms()
        if status == "Succeeded":
            self._report(fields, succeeded_event("", output), now)
        elif status == "Failed":
            self._report(fields, failed_event("", error, cause), now)
        final = dict(updates or {})
        final.update(status=status, stopped=str(now), error=error, cause=cause[:4096], claiming="")
        left = self._commit(tag, token, consumed, final, [], release=True)
        if left >= 0:
            self._expire(tag, fields)
        return min(left, 0)

    def _expire(self, tag: str, fields: dict[str, str]) -> None:
        """An ended run's keys live for the retention period; it leaves the safety net and its parent's open runs."""
        ttl = self.settings.retention_days * 86400
        pipe = self.state.pipeline(transaction=False)
        for key in (keys.maprun(tag), keys.maprun_inbox(tag), keys.maprun_children(tag), keys.maprun_running(tag)):
            pipe.expire(key, ttl)
        pipe.zrem(keys.maprun_wake_for(tag, self.settings.partitions), tag)
        pipe.srem(keys.execution_mapruns(fields.get("parent", "")), tag)
        pipe.execute()

    def _report(self, fields: dict[str, str], event: dict[str, Any], now: int) -> None:
        try:
            ref = parse_token(self.settings.token_secret, fields.get("token", ""))
        except InvalidToken:
            logger.warning("MapRun %s has no valid parent token; nobody is told it ended", fields.get("name"))
            return
        event["id"] = ref.task_id
        wake = self.settings.wake_after_ms

        def build(pipe: Any) -> None:
            pipe.zadd(keys.wake_for(ref.tag, self.settings.partitions), {ref.tag: now + wake})
            self.scripts.queue(pipe, "report", report_keys(ref), [ref.task_id, dumps(event), "", now, wake])

        result = self.scripts.pipeline_sync(build)[-1]
        if int(result[0]) == 1 and int(result[2]) == 1:
            push_drives(self.broker, self.settings, [ref.tag])

    # ------------------------------------------------------------ items

    def _count(self, spec: dict[str, Any]) -> int:
        """Total items of the run: the source counted up to MaxItems; more than the quota fails it."""
        quota = self.settings.maprun_max_items
        wanted = spec.get("max_items")
        cap = min(int(wanted), quota) if wanted else quota
        if "items" in spec:
            n = len(spec["items"])
        else:
            try:
                n = count(self.store, spec["source"], cap)
            except (StoreError, ReaderError) as exc:
                raise RunFailed(ITEM_READER_FAILED, str(exc)) from None
        if wanted:
            n = min(n, int(wanted))
        if n > quota:
            raise RunFailed(ITEMS_EXCEEDED, f"the Map has more than {quota} items (OPENFNF_MAPRUN_MAX_ITEMS); give it MaxItems")
        return n

    def _iterate(self, spec: dict[str, Any], cursor: dict[str, Any] | None) -> Iterator[tuple[Any, dict[str, Any]]]:
        if "items" in spec:
            items = spec["items"]
            start = int(cursor["i"]) if cursor else 0
            return ((items[i], {"i": i + 1}) for i in range(start, len(items)))
        return iterate(self.store, spec["source"], cursor)

    def _construct(self, spec: dict[str, Any], item: Any, index: int) -> Any:
        template = spec.get("constructor")
        if not template:
            return item
        text = dumps(template)
        build = self._constructors.get(text)
        if build is None:
            build = self._constructors[text] = compile_constructor(template)
        roots = dict(spec.get("roots") or {})
        roots["$Item"] = item
        try:
            return build(Env(roots, ("item", index)))
        except ExpressionError as exc:
            raise RunFailed(Errors.RUNTIME, f"ItemConstructor, item {index}: {exc}") from None

    def _next_children(self, spec: dict[str, Any], fields: dict[str, str], free: int) -> tuple[list[list[Any]], Any, int, int, int]:
        """The next `free` children: [[index, items, input], ...], and the cursor, items read, next index, total after them."""
        cursor = json.loads(fields["cursor"]) if fields.get("cursor") else None
        pos, nxt, total = int(fields.get("pos") or 0), int(fields.get("next") or 0), int(fields.get("total") or 0)
        batch = spec.get("batch")
        per = int(batch.get("items") or 0) if batch else 1
        per = per or math.inf  # type: ignore[assignment]
        max_bytes = int(batch.get("bytes") or 0) if batch else 0
        children: list[list[Any]] = []
        source = self._iterate(spec, cursor)
        pending: tuple[Any, dict[str, Any]] | None = None
        try:
            first = pos
            while len(children) < free and pos < total and pos - first < self.settings.maprun_page_items:
                items: list[Any] = []
                size = 2
                while pos < total and len(items) < per:
                    if pending is None:
                        pending = next(source, None)
                        if pending is None:  # the source shrank since it was counted: so does the run
                            total = pos
                            break
                    if jsonlimits.too_deep(pending[0], self.settings.max_json_depth):
                        raise RunFailed(ITEM_READER_FAILED, f"item {pos} nests deeper than {self.settings.max_json_depth} levels (OPENFNF_MAX_JSON_DEPTH)")
                    item = self._construct(spec, pending[0], pos)
                    if max_bytes:
                        bytes_ = len(dumps(item).encode("utf-8")) + 1
                        if bytes_ + 2 > max_bytes:
                            raise RunFailed(ITEM_READER_FAILED, f"item {pos} is larger than MaxInputBytesPerBatch ({max_bytes} bytes)")
                        if items and size + bytes_ > max_bytes:
                            break
                        size += bytes_
                    items.append(item)
                    pos, cursor, pending = pos + 1, pending[1], None
                if not items:
                    break
                if batch:
                    child_input: Any = {"Items": items}
                    if "input" in batch:
                        child_input["BatchInput"] = batch["input"]
                else:
                    child_input = items[0]
                children.append([nxt, len(items), child_input])
                nxt += 1
        except (StoreError, ReaderError) as exc:
            raise RunFailed(ITEM_READER_FAILED, str(exc)) from None
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        return children, cursor, pos, nxt, total

    # ------------------------------------------------------------ children

    def _pure_flow(self, def_id: str) -> FlowDef | None:
        """The children's definition when every state of it is pure (a first drive ends it), else None."""
        if def_id not in self._pure:
            flow: FlowDef | None = None
            raw = self.state.get(keys.definition(def_id))
            if raw is not None:
                try:
                    flow = parse_definition(as_str(raw))
                except FdlError:
                    flow = None
            if flow is not None and not all(st.type in PURE_TYPES for sc in flow.scopes.values() for st in sc.states.values()):
                flow = None
            self._pure[def_id] = flow
        return self._pure[def_id]

    def _claim(self, tag: str, fields: dict[str, str], children: list[list[Any]]) -> None:
        """Claim the reserved children (again after a crash: a child found claimed is left as it is) and drive them.

        Children of a Processor of pure states (Pass, Choice, Succeed, Fail, and Parallel / inline Map
        of those) end in their first decision: the run's driver makes that decision itself and writes
        the ended child in one call, as the child's own first drive would have, and counts its end at once.
        """
        if not children:
            return
        acct, flow, fid, name = fields.get("acct", ""), fields.get("flow", ""), fields.get("fid", ""), fields.get("name", "")
        express = fields.get("mode") == "Express"
        pure = self._pure_flow(fields.get("defid", ""))
        now = now_ms()
        wake = self.settings.wake_after_ms
        ttl = self.settings.retention_days * 86400
        tags: list[str] = []
        at: list[tuple[int, str, bool]] = []  # (pipeline index, child tag, whether run inline)
        statuses: dict[int, str] = {}  # child index -> how it ended, for those run inline

        def build(pipe: Any) -> None:
            for index, _, child_input in children:
                child = child_name(name, int(index))
                ctag = keys.execution_tag(fid, child)
                raw_input = dumps(child_input)
                started_event = {"t": "Started", "input": child_input, "name": child, "flow": flow}
                record = new_execution_fields(
                    account=acct, flow=flow, raw_input=raw_input, def_id=fields.get("defid", ""),
                    qualifier="", callback=child_callback(tag, int(index)), started=now,
                )  # fmt: skip
                record += ["mr", name]
                decision = self._decide(pure, started_event, now) if pure is not None else None
                if decision is not None:
                    at.append((len(pipe), ctag, True))
                    statuses[int(index)] = decision.status.value
                    record += _ended_fields(decision, now)
                    chunk = encode_history_chunk(decision.history)
                    as_json = dumps(dict(zip(record[::2], record[1::2], strict=True)))
                    self.scripts.queue(pipe, "maprun_child_done", [keys.execution(ctag), keys.history(ctag)], [chunk, ttl, as_json])
                    continue
                pipe.zadd(keys.wake_for(ctag, self.settings.partitions), {ctag: now + wake})
                at.append((len(pipe), ctag, False))
                self.scripts.queue(pipe, "claim", [keys.execution(ctag), keys.inbox(ctag)], [dumps(started_event), 0, *record])
                if express:
                    queue_express_timeout(pipe, ctag, now, self.settings.express_timeout_seconds, self.settings.partitions)
                tags.append(ctag)

        def index_them(pipe: Any) -> None:
            pipe.zadd(keys.maprun_children(tag), {child_name(name, int(c[0])): int(c[0]) for c in children})
            build(pipe)

        results = self.scripts.pipeline_sync(index_them)
        created = [t for i, t, inline in at if not inline and int(results[i][0]) == 1]
        ended: list[tuple[int, str]] = []  # (child index, status) of children that ended already
        for (i, _, inline), child in zip(at, children, strict=True):
            answer = results[i]
            if inline:
                status = as_str(answer[1]) if int(answer[0]) == 0 else ""
                ended.append((int(child[0]), status or statuses[int(child[0])]))
            elif int(answer[0]) == 0 and as_str(answer[1]) in ENDED:  # claimed before a crash, and over since
                ended.append((int(child[0]), as_str(answer[1])))
        if created and acct:
            pipe = self.state.pipeline(transaction=False)
            for t in created:
                pipe.incr(runcount.key_for(acct, t, self.settings.running_shards))  # the driver gives it back when the child ends
            pipe.execute()
        if ended:
            self._count_ends(tag, ended, now)
        push_drives(self.broker, self.settings, tags)

    def _decide(self, flow: FlowDef, started: dict[str, Any], now: int) -> Decision | None:
        """A pure child's first decision, when it ends the child (else the child is claimed and driven as usual)."""
        try:
            decision = advance(flow, None, [started], now, limits=self.limits)
        except Exception:  # noqa: BLE001 - the child's own driver then meets (and records) the same failure
            logger.exception("running a MapRun child inline failed; it runs as an execution")
            return None
        if not decision.ended:
            return None
        return decision

    def _count_ends(self, tag: str, ended: list[tuple[int, str]], now: int) -> None:
        """Count children that ended inside this drive (maprun_child_end.lua, exactly once each); the
        driver goes round again for their ChildEnded events, so no drive is published."""
        wake = self.settings.wake_after_ms
        run_keys = [keys.maprun(tag), keys.maprun_inbox(tag), keys.maprun_running(tag)]

        self.scripts.maprun_child_end(keys=run_keys, args=[now, wake, *(x for pair in ended for x in pair)])

    def _stop_children(self, tag: str, fields: dict[str, str]) -> None:
        """Ask every child in flight to stop (it is then counted Aborted)."""
        indexes = [int(as_str(i)) for i in self.state.hkeys(keys.maprun_running(tag))]
        if not indexes:
            return
        now = now_ms()
        wake = self.settings.wake_after_ms
        event = dumps({"t": "StopRequested", "error": ABORTED, "cause": f"MapRun {fields.get('name')} ended"})
        ctags = [keys.execution_tag(fields.get("fid", ""), child_name(fields.get("name", ""), i)) for i in indexes]

        def build(pipe: Any) -> None:
            for ctag in ctags:
                pipe.zadd(keys.wake_for(ctag, self.settings.partitions), {ctag: now + wake})
                self.scripts.queue(pipe, "append", [keys.execution(ctag), keys.inbox(ctag)], [event, now, wake])

        results = self.scripts.pipeline_sync(build)[1::2]
        push_drives(self.broker, self.settings, [t for t, r in zip(ctags, results, strict=True) if len(r) > 2 and int(r[2]) == 1])

    # ------------------------------------------------------------ results

# ---------------------------------------------------------------- hooks for the execution engine


def child_ended(scripts: Scripts, broker: Any, settings: Settings, callback: str, status: str, now: int) -> bool:
    """A child execution whose `cb` is a MapRun callback ended: count it (exactly once) and wake the run.
    False if the callback is not a MapRun's."""
    parsed = parse_callback(callback)
    if parsed is None:
        return False
    tag, index = parsed
    wake = settings.wake_after_ms

    run_keys = [keys.maprun(tag), keys.maprun_inbox(tag), keys.maprun_running(tag)]
    result = scripts.maprun_child_end(keys=run_keys, args=[now, wake, index, status])
    if int(result[0]) >= 1 and int(result[1]) == 1:
        queue = settings.activity_queue
        broker.rpush(queue, drive_message(tag, queue))
    elif int(result[0]) >= 1 and int(result[1]) == 2:  # refills are batched: the timers drive it soon
        scripts.client.zadd(keys.maprun_wake_for(tag, settings.partitions), {tag: now + REFILL_DELAY_MS}, xx=True, lt=True)
    return True


def abort_runs(scripts: Scripts, broker: Any, settings: Settings, parent_tag: str, activity_ids: list[str], now: int) -> None:
    """The parent cancelled these activities (it was stopped, or left the Map): abort their MapRuns, if any."""
    if not activity_ids:
        return
    flow_id, _ = keys.split_tag(parent_tag)
    tags = [run_tag(flow_id, run_name(parent_tag, aid)) for aid in activity_ids]
    event = dumps({"t": "Abort"})

    def build(pipe: Any) -> None:
        for t in tags:
            scripts.queue(pipe, "maprun_update", [keys.maprun(t), keys.maprun_inbox(t)], [event, now, settings.wake_after_ms])
        pipe.smembers(keys.execution_mapruns(parent_tag))

    *results, members = scripts.pipeline_sync(build)
    wake = [t for t, r in zip(tags, results, strict=True) if int(r[0]) == 1 and int(r[1]) == 1]
    # A MapRun that a redriven parent goes on with is named after an older activity; its record names the new one.
    others = [t for t in (as_str(m) for m in members) if t not in tags]
    if others:
        found = scripts.client.pipeline(transaction=False)
        for t in others:
            found.hget(keys.maprun(t), "aid")
        wanted = set(activity_ids)
        more = [t for t, aid in zip(others, found.execute(), strict=True) if aid is not None and as_str(aid) in wanted]
        if more:
            calls = [([keys.maprun(t), keys.maprun_inbox(t)], [event, now, settings.wake_after_ms]) for t in more]
            results = scripts.pipeline_sync(scripts.each("maprun_update", calls))
            wake += [t for t, r in zip(more, results, strict=True) if int(r[0]) == 1 and int(r[1]) == 1]
    if wake:
        queue = settings.activity_queue
        broker.rpush(queue, *(drive_message(t, queue) for t in wake))


def _items_in(raw_input: str) -> int:
    """How many items a batch child's input holds."""
    try:
        value = json.loads(raw_input) if raw_input else None
    except ValueError:
        return 1
    items = value.get("Items") if isinstance(value, dict) else None
    return len(items) if isinstance(items, list) and items else 1


def _ended_fields(decision: Decision, now: int) -> list[str]:
    """The record fields of a child that ended in its first decision (as commit.lua would have set them)."""
    out = ["status", decision.status.value, "stopped", str(now), "state", dumps(decision.state), "hseq", str(len(decision.history))]
    if decision.status == Status.SUCCEEDED:
        out += ["output", dumps(decision.output)]
    else:
        out += ["error", decision.error or "", "cause", decision.cause or ""]
    return out
