"""StartExecution, DescribeExecution (long-poll), ListExecutions, GetExecutionHistory, StopExecution."""
from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from api.actions.context import Call
from api.actions.flows import get_flow
from api.actions.mapruns import map_run_children
from api.actions.versions import resolve_qualifier
from api.admission import remember_pure
from api.params import boolean, integer, json_object, optional, required, resource_name
from common import control, keys, tracing
from common.claims import started_event
from common.control import Resolved
from common.errors import (
    ActionNotSupported,
    EntityTooLarge,
    ExecutionNotExists,
    FlowNotExists,
    InvalidArgument,
)
from common.interpreter import TERMINAL, Status
from common.purestart import Ended, execution_limits, pure_flow, run_at_start
from common.records import execution_view, history_view
from common.store import ExecutionFilter
from common.timefmt import parse_rfc3339
from common.tokens import InvalidToken, TaskRef, parse_token

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartParams:
    """What StartExecution and StartSyncExecution are asked for, checked."""

    flow_name: str
    name: str  # '' when the caller gave none
    raw_input: str  # as sent ('' when absent)
    input_obj: dict[str, Any]  # what the flow sees


def start_params(call: Call) -> StartParams:
    """FlowName, ExecutionName and Input of a start, or the documented error."""
    p = call.params
    flow_name = required(p, "FlowName")
    name = optional(p, "ExecutionName")
    if name:
        resource_name(name, "ExecutionName")
    raw_input = optional(p, "Input")
    input_obj: dict[str, Any] = {}
    if raw_input != "":
        if len(raw_input.encode("utf-8")) > call.settings.max_state_bytes:
            raise EntityTooLarge(call.settings.max_state_bytes)
        input_obj = json_object(raw_input, "Input", call.settings.max_json_depth)
    return StartParams(flow_name, name, raw_input, input_obj)


async def start_execution(call: Call) -> dict[str, Any]:
    """StartExecution: claim the name atomically, hand the run to the workers, answer at once."""
    p = call.params
    asked = start_params(call)
    flow_name, name, raw_input, input_obj = asked.flow_name, asked.name, asked.raw_input, asked.input_obj
    if call.flow_head is None:
        flow = await get_flow(call, flow_name)
    elif (found := await call.store.flow_for_start(call.account, flow_name, call.flow_head)) is not None:
        flow = found  # its head was read with the admission checks (api/admission.py)
    else:
        raise FlowNotExists(flow_name)
    if flow.get("ExecutionMode") == "Express":
        raise ActionNotSupported(
            message=f"Flow {flow_name} runs in Express mode: start it with StartSyncExecution, not StartExecution."
        )
    callback = optional(p, "CallbackFnFTaskToken")
    parent: TaskRef | None = None
    depth = 0  # a child of the token's execution is one level deeper (common/lineage.py)
    if callback:
        parent, parent_depth = await check_waiting_token(call, callback)
        depth = parent_depth + 1
    qualifier = optional(p, "Qualifier")
    runs = await resolve_qualifier(call, flow, qualifier)
    name = name or call.execution_name or str(uuid.uuid4())
    ended = None if callback else run_pure(call, flow, runs, name, input_obj)
    started = await control.start(
        call.store, call.publisher.publish, call.settings, account=call.account, flow=flow, name=name,
        raw_input=raw_input, input_obj=input_obj, runs=runs, qualifier=qualifier, callback=callback, now=call.now,
        parent=parent, depth=depth, woken=call.woken, ended=ended,
    )  # fmt: skip
    sweep_now_and_then(call, flow["Id"])
    return started


def run_pure(call: Call, flow: dict[str, str], runs: Resolved, name: str, input_obj: dict[str, Any]) -> Ended | None:
    """A flow of pure states run to its end here, for its claim to write ended (common/purestart.py); None: the
    workers run it (not pure, over OPENFNF_PURE_AT_START_EVENTS, or tracing is on: a traced execution shows
    its drive)."""
    budget = call.settings.pure_at_start_events
    if budget <= 0 or tracing.tracer is not None:
        return None
    parsed = pure_flow(runs.def_id, runs.definition)
    ended = None
    if parsed is not None:
        try:
            event = started_event(input_obj, name, flow["Name"])
            ended = run_at_start(parsed, event, call.now, execution_limits(call.settings), budget)
        except Exception:  # a bug in the interpreter: the workers run it, and end it Failed if it fails there too
            logger.exception("running flow %s at its start failed; the workers run it", flow["Name"])
    remember_pure(call.account, flow["Name"], ended is not None)
    return ended


_SWEEPS: set[asyncio.Task[int]] = set()  # running index sweeps (a task needs a reference until it is done)


def sweep_now_and_then(call: Call, flow_id: str) -> None:
    """On average one start (StartExecution, StartSyncExecution) in OPENFNF_INDEX_SWEEP_EVERY drops expired names
    from its flow's executions index, after the answer (Store.sweep_index): the index of a flow nobody lists
    stays bounded."""
    every = call.settings.index_sweep_every
    if every <= 0 or random.randrange(every):
        return
    task = asyncio.create_task(call.store.sweep_index(flow_id, call.now, call.settings.retention_days * 86_400_000))
    _SWEEPS.add(task)
    task.add_done_callback(_swept)


def _swept(task: asyncio.Task[int]) -> None:
    _SWEEPS.discard(task)
    if not task.cancelled() and task.exception() is not None:  # the next sweep tries again
        logger.warning("sweeping an executions index failed: %r", task.exception())


async def check_waiting_token(call: Call, token: str) -> tuple[TaskRef, int]:
    """A task token this service issued for a task that still waits, and its execution's nesting
    depth; else InvalidArgument."""
    try:
        ref = parse_token(call.settings.token_secret, token)
    except InvalidToken as exc:
        raise InvalidArgument(message=f"CallbackFnFTaskToken is invalid: {exc}.") from None
    state, depth = await call.store.waiting_task(ref.tag, ref.task_id)
    if state != "waiting":
        raise InvalidArgument(message="CallbackFnFTaskToken is invalid: its task is not waiting for a callback.")
    return ref, depth


async def _execution(call: Call, watch: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    flow_name, name = required(call.params, "FlowName"), required(call.params, "ExecutionName")
    flow = await get_flow(call, flow_name)
    fields = await call.store.read_execution(flow["Id"], name, watch=watch)
    if fields is None:
        raise ExecutionNotExists(name, flow_name)
    return flow, fields


async def describe_execution(call: Call) -> dict[str, Any]:
    """DescribeExecution; with WaitTimeSeconds > 0, answer when the execution ends or the time is up."""
    wait = integer(call.params, "WaitTimeSeconds", default=0, lo=0, hi=call.settings.long_poll_max_seconds)
    flow, fields = await _execution(call)
    if wait > 0 and fields["status"] not in TERMINAL:
        tag = keys.execution_tag(flow["Id"], fields["name"])
        name = fields["name"]

        async def read(watch: bool) -> dict[str, str] | None:
            # With the watch mark set, the end is published (api/waiters.py).
            return await call.store.read_execution(flow["Id"], name, watch=call.waiters.mark if watch else False)

        # Answers once the execution ends, or at the timeout with its state then; reads that fail
        # meanwhile (a failover) are tried again, the last state read answers.
        fields = await call.waiters.until_end(tag, read, wait, fields) or fields
    return execution_view(fields, await call.store.definition(fields["defid"]))


async def list_executions(call: Call) -> dict[str, Any]:
    """ListExecutions, in start order, paged by execution name, with the documented filters."""
    p = call.params
    limit = integer(p, "Limit", default=60, lo=1, hi=100)
    status = optional(p, "Status")
    if status and status not in {s.value for s in Status}:
        raise InvalidArgument(message=f"Status must be one of {', '.join(s.value for s in Status)}, not '{status[:40]}'.")
    match = ExecutionFilter(
        status=status,
        prefix=optional(p, "ExecutionNamePrefix"),
        qualifier=optional(p, "Qualifier"),
        begin=_time_param(p, "StartedTimeBegin"),
        end=_time_param(p, "StartedTimeEnd"),
    )
    metadata_only = boolean(p, "MetadataOnly")
    flow = await get_flow(call, required(p, "FlowName"))
    if optional(p, "MapRunName"):  # a distributed Map's children (issue 16), in item order
        rows, nxt = await map_run_children(call, flow["Id"], optional(p, "MapRunName"), optional(p, "NextToken") or None, limit)
        rows = [r for r in rows if match.accepts(r)]
    else:
        rows, nxt = await call.store.list_executions(flow["Id"], optional(p, "NextToken") or None, limit, match)
    executions = []
    for row in rows:
        view = execution_view(row, "" if metadata_only else await call.store.definition(row["defid"]))
        if metadata_only:
            for key in ("FlowDefinition", "Input", "Output"):
                view.pop(key, None)
        executions.append(view)
    out: dict[str, Any] = {"Executions": executions}
    if nxt:
        out["NextToken"] = nxt
    return out


def _time_param(params: dict[str, str], name: str) -> int | None:
    raw = optional(params, name)
    if not raw:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise InvalidArgument(message=f"{name} must be an RFC 3339 time such as 2019-01-01T01:01:01Z, not '{raw[:40]}'.") from None


async def get_execution_history(call: Call) -> dict[str, Any]:
    """GetExecutionHistory, paged by EventId (NextToken is the id of the next event)."""
    limit = integer(call.params, "Limit", default=60, lo=1, hi=1000)
    start = integer(call.params, "NextToken", default=1, lo=1, hi=2**31)
    flow, fields = await _execution(call)
    events = await call.store.history(flow["Id"], fields["name"])
    page = [e for e in events if e.id >= start][: limit + 1]
    out: dict[str, Any] = {"Events": [history_view(e) for e in page[:limit]]}
    if len(page) > limit:
        out["NextToken"] = str(page[limit].id)
    return out


async def stop_execution(call: Call) -> dict[str, Any]:
    """StopExecution: ask the driver to end a running execution as Stopped (asynchronously, as the cloud)."""
    p = call.params
    error, cause = optional(p, "Error"), optional(p, "Cause")
    flow, fields = await _execution(call)
    status = await control.stop(call.store, call.publisher.publish, flow, fields, error, cause, call.now)
    view = execution_view(fields, await call.store.definition(fields["defid"]))
    view["Status"] = status
    view["RoleArn"] = flow.get("RoleArn", "")
    return view
