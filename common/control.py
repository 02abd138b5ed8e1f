"""What acts on executions: start, stop, redrive and report a task, shared by the API's actions and the console.

Each function takes the store, a `publish(tag)` that hands an execution to the workers, and what
the caller has already checked (who may act is decided by the caller's policy check); it raises
the documented FnfError when the execution or task cannot take the act.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from common import keys, runcount, tracing
from common.errors import (
    ExecutionAlreadyCompleted,
    ExecutionAlreadyExists,
    ExecutionNotExists,
    ExecutionNotRedrivable,
    FlowAliasNotExists,
    FlowVersionNotExists,
    InvalidArgument,
    TaskAlreadyCompleted,
)
from common.execmetrics import count_execution_events
from common.faults import fault_point
from common.interpreter import TERMINAL, EventType, Status
from common.purestart import Ended
from common.records import dumps, execution_view
from common.reports import report_keys
from common.settings import Settings
from common.store import Store
from common.tokens import TaskRef

Publish = Callable[[str], Awaitable[None]]  # hands the execution with this tag to the workers


@dataclass(frozen=True)
class Resolved:
    """What a StartExecution runs: the definition snapshot a Qualifier selects."""

    def_id: str
    definition: str
    version: str  # '' for the flow's current definition


async def resolve_qualifier(store: Store, account: str, flow: dict[str, str], qualifier: str) -> Resolved:
    """The definition to run: the flow's current one, a version, or an alias's weighted pick."""
    if not qualifier:
        return Resolved(flow["DefId"], flow["Definition"], "")
    versions = store.versions
    if qualifier.isdigit():
        version = await versions.get(account, flow["Name"], qualifier)
        if version is None:
            raise FlowVersionNotExists(qualifier, flow["Name"])
    else:
        alias = await versions.alias(account, flow["Name"], qualifier)
        if alias is None:
            raise FlowAliasNotExists(qualifier, flow["Name"])
        chosen = pick_version(alias["RoutingConfigurations"], random.random())
        version = await versions.get(account, flow["Name"], chosen)
        if version is None:  # deleted under the alias's feet; DeleteFlowVersion refuses this normally
            raise FlowVersionNotExists(chosen, flow["Name"])
    return Resolved(version["DefId"], await store.definition(version["DefId"]), version["Version"])


def pick_version(routes: list[dict[str, Any]], draw: float) -> str:
    """The version a draw in [0, 1) lands on, by the routes' weights (summing to 100)."""
    edge = 0.0
    for route in routes:
        edge += int(route["Weight"]) / 100
        if draw < edge:
            return str(route["Version"])
    return str(routes[-1]["Version"])


async def start(
    store: Store, publish: Publish, settings: Settings, *, account: str, flow: dict[str, str], name: str,
    raw_input: str, input_obj: dict[str, Any], runs: Resolved, qualifier: str, callback: str, now: int,
    parent: TaskRef | None = None, depth: int = 0, woken: bool = False, ended: Ended | None = None,
) -> dict[str, Any]:
    """Claim the execution name atomically and hand the run to the workers; the API's execution object.

    A name still running answers that execution; a finished one is ExecutionAlreadyExists. `parent`:
    the task whose token is the callback (the new execution is its child, `depth` deep: common/lineage.py).
    `woken`: its wake-up was written already (api/admission.py, keys.pending_start). `ended`: the execution
    was run to its end already (common/purestart.py, never with a parent): its claim writes it ended, and no
    worker is told (the answer is the ended execution).
    """
    claim = await store.claim_execution(
        account=account, flow=flow, name=name, raw_input=raw_input, input_obj=input_obj, def_id=runs.def_id,
        qualifier=qualifier, version=runs.version, callback=callback, now=now, depth=depth, woken=woken,
        trace=tracing.execution_started(flow["Name"], name),  # its drives continue the StartExecution span's trace
        ended=ended,
    )  # fmt: skip
    if not claim.created:
        if claim.fields.get("status") in TERMINAL:
            raise ExecutionAlreadyExists(name, flow["Name"])
        return execution_view(claim.fields, await store.definition(claim.fields["defid"]))
    fault_point(settings, "api.after_claim")
    if ended is not None:
        count_execution_events(ended.events)
        return execution_view(claim.fields, runs.definition)
    tag = keys.execution_tag(flow["Id"], name)
    if parent is not None:  # the token's task owns this child: cancelling the task stops it
        await store.adopt(parent.tag, parent.task_id, tag, now)
    await publish(tag)
    return execution_view(claim.fields, runs.definition)


async def stop(store: Store, publish: Publish, flow: dict[str, str], fields: dict[str, str], error: str, cause: str, now: int) -> str:
    """Ask the driver to end a running execution as Stopped; its status now (as StopExecution answers it)."""
    if fields["status"] in TERMINAL:
        raise ExecutionAlreadyCompleted(fields["name"], flow["Name"])
    event = {"t": EventType.STOP_REQUESTED.value, "error": error, "cause": cause}
    # The children it waits for are stopped in the same walk, not a level per drive (common/lineage.py).
    stopping, more = await store.stop(flow["Id"], fields["name"], event, now)
    if stopping == -1:
        raise ExecutionNotExists(fields["name"], flow["Name"])
    if stopping == 0:
        raise ExecutionAlreadyCompleted(fields["name"], flow["Name"])
    tag = keys.execution_tag(flow["Id"], fields["name"])
    await asyncio.gather(*(publish(t) for t in dict.fromkeys([tag, *more])))
    return fields["status"] or Status.RUNNING.value


REDRIVEN_EVENT = {"t": "Redriven"}  # the inbox event reopen.lua queues (common/interpreter/redrive.py)


async def redrive(store: Store, publish: Publish, settings: Settings, *, account: str, flow: dict[str, str], name: str, now: int) -> int:
    """RedriveExecution (an OpenFnF extension, issue 18): reopen a Failed, Stopped or TimedOut execution; its redrive count.

    reopen.lua decides atomically (two redrives at once make one); the wake-up is recorded in the
    same round trip before it, so a front door that dies before publishing the drive loses nothing.
    """
    tag = keys.execution_tag(flow["Id"], name)
    if flow.get("ExecutionMode") == "Express":  # a flow's mode never changes: its executions are Express ones
        raise ExecutionNotRedrivable(name, flow["Name"], "it is an Express execution (only Standard ones are redriven)")

    def build(pipe: Any) -> None:
        pipe.zadd(keys.wake_for(tag, settings.partitions), {tag: now + settings.wake_after_ms})
        store.scripts.queue(pipe, "reopen", [*keys.execution_keys(tag), keys.tasks(tag)], [dumps(REDRIVEN_EVENT), settings.max_redrives, now, settings.max_history_events])

    _, result = await store.scripts.pipeline(build)
    code = int(result[0])
    if code == -1:
        # The flow's executions index keeps a name after its record expired: past retention, not unknown.
        if await store.redis.zscore(keys.executions_index(flow["Id"]), name) is not None:
            raise ExecutionNotRedrivable(name, flow["Name"], f"it is past its retention period ({settings.retention_days} days)")
        raise ExecutionNotExists(name, flow["Name"])
    if code == 0:
        status = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        why = "it has succeeded" if status == Status.SUCCEEDED.value else f"it is {status}, not Failed, Stopped or TimedOut"
        raise ExecutionNotRedrivable(name, flow["Name"], why)
    if code == -2:
        raise ExecutionNotRedrivable(name, flow["Name"], f"it has been redriven {int(result[1])} times, the most allowed (OPENFNF_MAX_REDRIVES)")
    if code == -3:
        raise ExecutionNotRedrivable(name, flow["Name"], f"its history has reached the limit of {settings.max_history_events} events")
    await store.redis.incr(runcount.key_for(account, tag, settings.running_shards))  # running again: the cap of issue 7 counts it until it ends again
    fault_point(settings, "api.after_reopen")
    await publish(tag)
    return int(result[1])


async def report(
    store: Store, publish: Publish, settings: Settings, *, account: str, token: str, ref: TaskRef, event: dict[str, Any], now: int
) -> int:
    """Deliver a task's reported result (succeeded_event / failed_event) once; the EventId ReportTask* answers."""

    def build(pipe: Any) -> None:
        pipe.zadd(keys.wake_for(ref.tag, settings.partitions), {ref.tag: now + settings.wake_after_ms})
        # With now and wake_after_ms, report.lua keeps the drive mark: reports arriving together
        # (a Map's callbacks) publish one drive while it is queued.
        store.scripts.queue(pipe, "report", report_keys(ref), [ref.task_id, dumps(event), account, now, settings.wake_after_ms])

    _, result = await store.scripts.pipeline(build)
    code = int(result[0])
    if code == 0:
        raise TaskAlreadyCompleted(token[:64])
    if code < 0:
        # Another account's token and a token of a vanished execution look the same: never leak which.
        raise InvalidArgument(message="TaskToken is invalid: no task of yours waits on it.")
    if int(result[2]) == 1:
        await publish(ref.tag)
    return int(result[1]) + 1
