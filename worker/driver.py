"""drive(execution): take the fenced lease, feed the inbox to advance(), write back in one Lua call."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from common import keys, runcount
from common.driverscripts import (
    ACQUIRE_REPLIES,
    HELD,
    NO_EXECUTION,
    Acquired,
    Commit,
    new_fence,
    queue_acquire,
    queue_commit,
    read_acquired,
)
from common.faults import fault_point
from common.fdl import FlowDef, parse_definition
from common.interpreter import CommandType, EventType, HistoryEvent, Status, abort, advance
from common.lineage import orphan_event
from common.logs import execution_var, flow_var
from common.purestart import end_fields, execution_limits
from common.records import dumps, encode_history_chunk
from common.scripts import Scripts
from common.settings import Settings
from common.tokens import make_token
from worker.dispatch import Dispatcher
from worker.heartbeat import shutting_down
from worker.metrics import record_history
from worker.spans import traced_decide

logger = logging.getLogger(__name__)

MAX_ROUNDS = 100  # inbox refills handled in one task before leaving the rest to a fresh drive
INTERNAL_ERROR = "FnF.InternalError"


def now_ms() -> int:
    """The clock the driver hands to the interpreter."""
    return int(time.time() * 1000)


class Driver:
    """Drives executions against one Redis (sync client); one per worker process."""

    def __init__(self, redis: Any, settings: Settings, dispatcher: Dispatcher | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts(redis)
        self.dispatcher = dispatcher or Dispatcher(redis, redis, settings)
        self.limits = execution_limits(settings)
        self._flows: dict[str, FlowDef] = {}  # def id -> parsed definition (immutable)
        # Wake-up members (keys.wake) this driver's commits made needless: removed with the next acquire round trip
        # (see _commit): the tags of executions it ended Succeeded and the StartExecution wake-ups (keys.pending_start)
        # of executions whose first drive it committed.
        self._unwake: list[str] = []

    def flow(self, def_id: str) -> FlowDef:
        """The parsed definition with this content id."""
        flow = self._flows.get(def_id)
        if flow is None:
            raw = self.redis.get(keys.definition(def_id))
            if raw is None:
                raise LookupError(f"definition {def_id} is missing")
            flow = parse_definition(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            self._flows[def_id] = flow
        return flow

    def drive(self, tag: str) -> str:
        """Advance one execution as far as its inbox allows; returns what happened (for logs and tests)."""
        return self.drive_many([tag])[tag]

    def drive_many(self, tags: list[str]) -> dict[str, str]:
        """Advance these executions, each as far as its inbox allows; what happened to each.

        One round trip takes every lease (common/driverscripts.py), the interpreter and the side effects run
        execution by execution, and one round trip writes every result back (commit.lua). Those
        whose inbox filled again meanwhile go round again, up to MAX_ROUNDS.
        """
        outcomes = dict.fromkeys(tags, "idle")
        active = list(outcomes)
        for _ in range(MAX_ROUNDS):
            unwake, self._unwake = self._unwake, []
            tokens = [new_fence() for _ in active]
            got = self.scripts.pipeline_sync(partial(self._acquire, tags=active, tokens=tokens, unwake=unwake))
            rounds, strays = [], []
            for i, (tag, token) in enumerate(zip(active, tokens, strict=True)):
                acquired = read_acquired(got[i * ACQUIRE_REPLIES : (i + 1) * ACQUIRE_REPLIES], token, tag)
                if acquired.token == NO_EXECUTION:
                    outcomes[tag] = "missing"
                    if acquired.stray:
                        strays.append(keys.lease(tag))
                elif acquired.token == HELD:
                    # the holder re-reads the inbox before it lets go; the safety net covers a dead holder
                    outcomes[tag] = "busy"
                else:
                    rounds.append(self._decide(tag, acquired))
            if strays:  # leases taken for executions that do not exist (rare): let go of them at once
                pipe = self.redis.pipeline(transaction=False)
                for lease in strays:
                    pipe.delete(lease)
                pipe.execute()
            active = []
            for done, left in zip(rounds, self._commit(rounds), strict=True):
                outcomes[done.tag] = "fenced" if left < 0 else "driven"
                # Events left go round again. So does a fenced drive (its lease expired, or a redrive took it
                # back): events that came while it held the lease published no drive (the `dq` mark,
                # common/driverscripts.py), so it takes the lease again, or finds who holds it now.
                if left != 0:
                    active.append(done.tag)
            if not active:
                break
            if shutting_down():  # SIGTERM: hand the rest back; the inbox keeps its wake-up, so the safety net re-drives it
                outcomes.update(dict.fromkeys(active, "handed_back"))
                break
        return outcomes

    def _acquire(self, pipe: Any, tags: list[str], tokens: list[str], unwake: list[str]) -> None:
        """Queue the acquire of each of these executions (with its fencing token), then the removal of the wake-up
        members `unwake` (see _commit)."""
        for tag, token in zip(tags, tokens, strict=True):
            queue_acquire(pipe, tag, self.settings.lease_ms, token)
        n = self.settings.partitions
        for wake_key in dict.fromkeys(keys.wake_for(t, n) for t in unwake):  # one ZREM per partition (slot)
            pipe.zrem(wake_key, *(t for t in unwake if keys.wake_for(t, n) == wake_key))

    @traced_decide  # an openfnf.drive span when tracing is on (worker/spans.py)
    def _decide(self, tag: str, got: Acquired) -> _Round:
        """Feed the inbox to the interpreter and write the side effects; the commit is left to _commit."""
        status, state_json, def_id, flow_name, name, hseq = got.status, got.state, got.def_id, got.flow, got.name, got.hseq
        flow_var.set(flow_name)
        execution_var.set(name)
        events = stop_first_if_new(state_json, [json.loads(e) for e in got.inbox])
        now = now_ms()
        state = json.loads(state_json) if state_json else None
        try:
            flow_id, execution = keys.split_tag(tag)
            secret = self.settings.token_secret
            decision = advance(
                self.flow(def_id), state, events, now, limits=self.limits,
                token_for=lambda task_id: make_token(secret, flow_id, execution, task_id),
            )  # fmt: skip
        except Exception as exc:  # a bug (or a lost definition) must end the execution, not loop forever
            logger.exception("the interpreter failed; ending the execution as Failed")
            # The same end as any failure: current state shape, cancels, parent and callback told.
            decision = abort(state, now, INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        fields = end_fields(decision, now) if decision.ended and status != decision.status.value else []
        # Side effects first (see worker/dispatch.py): a crash before the commit repeats them harmlessly.
        # A cancelled task's child flow is stopped with it (common/lineage.py).
        cancels = any(c["t"] == CommandType.CANCEL_ACTIVITY for c in decision.commands)
        orphaned = orphan_event(flow_name, name, decision.status.value) if cancels else None
        self.dispatcher.dispatch(tag, decision.commands, got.account, orphaned)
        if fields and got.callback:
            self.dispatcher.notify_parent(got.callback, decision, now, tag)
        fault_point(self.settings, "driver.before_commit")
        ttl = self.settings.retention_seconds if decision.ended else 0
        commit = Commit(
            tag, got.token, len(got.inbox), dumps(decision.state), encode_history_chunk(decision.history),
            hseq + len(decision.history), ttl, tuple(fields), tasks=bool(decision.state.get("tk", 1)),
        )  # fmt: skip
        succeeded = bool(fields) and decision.status == Status.SUCCEEDED
        # The first drive consumes the Started event, which is all a StartExecution's own wake-up guards.
        pending = keys.pending_start(got.account, flow_name, name) if hseq == 0 and got.account else ""
        return _Round(commit, got.account if fields else "", decision.history, succeeded, pending)

    def _commit(self, rounds: list[_Round]) -> list[int]:
        """Write back every round in one round trip; for each, the inbox events left (-1: lost the lease).

        An execution that ends gives back its place under its account's cap (issue 7) in the same
        round trip; if its commit was fenced after all, the place is taken again (the cap is approximate).
        """
        if not rounds:
            return []
        ended = [r for r in rounds if r.account]

        def build(pipe: Any) -> None:
            for r in rounds:
                queue_commit(self.scripts, pipe, r.commit)
            for r in ended:  # (commit.lua deletes the children hash at the end: they were stopped with their tasks)
                pipe.decr(runcount.key_for(r.account, r.tag, self.settings.running_shards))

        lefts = [int(left) for left in self.scripts.pipeline_sync(build)[: len(rounds)]]
        retake = []
        for r, left in zip(rounds, lefts, strict=True):
            if left >= 0:
                record_history(r.history)  # executions by status, for /metrics
                if r.succeeded:
                    # Succeeded for good: nothing joins its inbox any more (every appender checks the status first)
                    # and it is never reopened (reopen.lua redrives only Failed, Stopped and TimedOut ones, and
                    # re-arms the wake-up itself: removing one now could race with that), so its wake-up guards
                    # nothing. Removed with the next acquire round trip rather than a round trip of its own; one
                    # never removed (an idle or dead worker) is released by the timers' rescue as before.
                    self._unwake.append(r.tag)
                if r.pending:
                    # The StartExecution's wake-up (written by the front door before its claim, api/admission.py)
                    # guarded the Started event until a drive consumed it: this commit did. Later events carry
                    # wake-ups of their own (every inbox append records one), and reopen.lua re-arms the tag's.
                    self._unwake.append(r.pending)
            else:
                logger.warning("lost the lease of %s while driving it; its events stay for the next drive", r.tag)
                if r.account:
                    retake.append(runcount.key_for(r.account, r.tag, self.settings.running_shards))
        if retake:
            pipe = self.redis.pipeline(transaction=False)
            for key in retake:
                pipe.incr(key)
            pipe.execute()
        return lefts


@dataclass(frozen=True)
class _Round:
    """One execution's drive, decided and waiting for its commit."""

    commit: Commit
    account: str  # set when this round ends the execution: its running count goes down
    history: list[HistoryEvent]
    succeeded: bool = False  # this round ends it Succeeded (its wake-up can go, see Driver._commit)
    pending: str = ""  # its first drive: the member of its StartExecution wake-up (keys.pending_start), which can go

    @property
    def tag(self) -> str:
        """The execution driven."""
        return self.commit.tag


def stop_first_if_new(state_json: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An execution stopped before its first drive ends Stopped without running a state: the stop goes first."""
    if state_json:
        return events
    stops = [e for e in events if isinstance(e, dict) and e.get("t") == EventType.STOP_REQUESTED]
    if not stops:
        return events
    return [stops[0], *(e for e in events if e is not stops[0])]
