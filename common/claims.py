"""Starting an execution from any process: the claim's commands for one pipeline, and what its answer means.

StartExecution's claim lives in common/store.py (front door, asyncio). StartSyncExecution and the
timers' schedules start executions too, one of them from a sync client, so this module queues the
same commands (wake-up, index entry, claim.lua) on any pipeline that `Scripts.pipeline` or
`Scripts.pipeline_sync` runs, and reads the claim's answer. The Lua is claim.lua, shared.

The running count (issue 7's cap, the execution's shard `runcount.key_for(account, tag, n)`) is the caller's: StartExecution counts
it in the same pipeline and gives it back when the claim is lost; StartSyncExecution and the
schedules count it once the claim is won.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common import keys
from common.purestart import Ended
from common.records import dumps, new_execution_fields
from common.scripts import Scripts
from common.settings import Settings

EXPRESS_TIMEOUT_ERROR = "FnF.Timeout"


@dataclass(frozen=True)
class Claim:
    """The answer of a StartExecution claim: either ours (created) or the holder's fields."""

    created: bool
    fields: dict[str, str]


@dataclass(frozen=True)
class PendingClaim:
    """A claim queued on a pipeline: where its answer will be, and what it wrote if it wins."""

    account: str
    flow_name: str
    name: str
    tag: str
    fields: list[str]
    at: int  # index of claim.lua's answer among the pipeline's results

    def outcome(self, results: list[Any]) -> Claim:
        """The claim's result: created (the caller then counts it: INCR runcount.key_for(account, tag, n)), or the
        fields of the execution that holds the name."""
        result = results[self.at]
        if int(result[0]) == 1:
            return Claim(True, {**dict(zip(self.fields[::2], self.fields[1::2], strict=True)), "name": self.name})
        held = dict(zip(("status", "input", "output", "started", "stopped", "defid"), result[1:], strict=False))
        out = {k: (v.decode() if isinstance(v, bytes) else (v or "")) for k, v in held.items()}
        out.update(flow=self.flow_name, name=self.name)
        return Claim(False, out)


def queue_claim(
    scripts: Scripts,
    pipe: Any,
    settings: Settings,
    *,
    account: str,
    flow: dict[str, str],
    name: str,
    raw_input: str,
    input_obj: dict[str, Any],
    def_id: str,
    now: int,
    qualifier: str = "",
    version: str = "",
    callback: str = "",
    watch: bool | str = False,
    trace: str = "",
    depth: int = 0,
    wake: bool = True,
    ended: Ended | None = None,
) -> PendingClaim:
    """Queue the claim of execution `name` of `flow` (as StartExecution's); `watch`: publish its end at once (a str: the watch mark);
    `depth`: its nesting depth as a child flow (common/lineage.py); `ended`: the execution was run to its end
    at its start (common/purestart.py run_at_start on started_event(...)): the claim writes it ended, with
    its history and retention (claim.lua with a retention), and no wake-up guards it."""
    tag = keys.execution_tag(flow["Id"], name)
    fields = new_execution_fields(
        account=account, flow=flow["Name"], raw_input=raw_input,
        def_id=def_id, qualifier=qualifier, version=version, callback=callback, started=now, trace=trace, depth=depth,
    )  # fmt: skip
    if flow.get("Environment"):
        fields += ["env", flow["Environment"]]  # the environment this execution runs with (DescribeExecution)
    if watch:
        fields += ["watch", watch if isinstance(watch, str) else "1"]  # how commit.lua publishes the end (api/waiters.py)
    first: str | bytes  # ARGV[1]: the Started event, or the whole history
    if ended is None:
        # Queued with Started in its inbox. The wake-up goes first: if this process dies before the drive is
        # published, the timers process re-drives the execution after wake_after_ms. First in one pipeline holds
        # on one server only: on a cluster the caller writes it a round trip before (wake=False here; see
        # store.claim_execution).
        if wake:
            pipe.zadd(keys.wake_for(tag, settings.partitions), {tag: now + settings.wake_after_ms})
        into, first, ttl = keys.inbox(tag), dumps(started_event(input_obj, name, flow["Name"])), 0
    else:  # written ended: its whole history, the end's fields instead of Running, the retention
        at_status = fields.index("status")
        fields = [*fields[:at_status], *fields[at_status + 2 :], *ended.fields]
        into, first, ttl = keys.history(tag), ended.history_chunk, settings.retention_seconds
    pipe.zadd(keys.executions_index(flow["Id"]), {name: now}, nx=True)
    at = len(pipe)
    scripts.queue(pipe, "claim", [keys.execution(tag), into], [first, ttl, *fields])
    return PendingClaim(account, flow["Name"], name, tag, fields, at)


def started_event(input_obj: dict[str, Any], name: str, flow_name: str) -> dict[str, Any]:
    """The Started inbox event of a new execution (its first drive's, or run_at_start's, common/purestart.py)."""
    return {"t": "Started", "input": input_obj, "name": name, "flow": flow_name}


def queue_express_timeout(pipe: Any, tag: str, now: int, seconds: int, partitions: int) -> None:
    """Queue the timer that ends an Express execution still running `seconds` after it started."""
    event = {
        "t": "StopRequested",
        "error": EXPRESS_TIMEOUT_ERROR,
        "cause": f"The Express execution did not end within {seconds} seconds.",
    }
    pipe.zadd(keys.timers_for(tag, partitions), {dumps({"tag": tag, "event": event}): now + seconds * 1000})
