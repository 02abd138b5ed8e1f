"""StartSyncExecution: run an execution of an Express flow on the workers and answer when it ends (a flow of pure
states: run here, at its start, common/purestart.py)."""
from __future__ import annotations

import json
import uuid
from dataclasses import astuple
from typing import Any

from api.actions.context import Call
from api.actions.executions import run_pure, start_params, sweep_now_and_then
from api.actions.flows import get_flow
from api.actions.versions import resolve_qualifier
from api.params import optional
from common import keys, runcount, tracing
from common.claims import PendingClaim, queue_claim, queue_express_timeout
from common.errors import ActionNotSupported, ExecutionAlreadyExists
from common.execmetrics import count_execution_events
from common.redisclients import is_cluster
from common.timefmt import rfc3339_ms


async def start_sync_execution(call: Call) -> dict[str, Any]:
    """StartSyncExecution: claim `{ExecutionName}:{uuid}` (or a UUID), drive it like any execution, wait for its end."""
    p = call.params
    flow_name, given, raw_input, input_obj = astuple(start_params(call))
    flow = await get_flow(call, flow_name)
    if flow.get("ExecutionMode") != "Express":
        raise ActionNotSupported(
            message=f"Standard execution is not supported: flow {flow_name} runs in Standard mode; start it with StartExecution."
        )
    qualifier = optional(p, "Qualifier")
    runs = await resolve_qualifier(call, flow, qualifier)
    name = f"{given}:{uuid.uuid4()}" if given else str(uuid.uuid4())
    tag = keys.execution_tag(flow["Id"], name)
    limit = call.settings.express_timeout_seconds
    pending: list[PendingClaim] = []
    # A flow of pure states is run to its end here (common/purestart.py): the claim writes it ended, with no
    # wake-up, Express timeout or watch mark; nobody waits for it.
    ended = run_pure(call, flow, runs, name, input_obj)
    trace = tracing.execution_started(flow_name, name)

    cluster = is_cluster(call.store.redis)
    if cluster and ended is None:  # the wake-up durable before the claim (one pipeline orders them on one server only)
        await call.store.redis.zadd(keys.wake_for(tag, call.settings.partitions), {tag: call.now + call.settings.wake_after_ms})

    def build(pipe: Any) -> None:
        pending[:] = [
            queue_claim(
                call.store.scripts, pipe, call.settings, account=call.account, flow=flow, name=name,
                raw_input=raw_input, input_obj=input_obj, def_id=runs.def_id, now=call.now, qualifier=qualifier,
                version=runs.version, watch=call.waiters.mark if ended is None else False, trace=trace, wake=not cluster,
                ended=ended,
            )
        ]  # fmt: skip
        if ended is None:
            queue_express_timeout(pipe, tag, call.now, limit, call.settings.partitions)

    results = await call.store.scripts.pipeline(build)
    claim = pending[0].outcome(results)
    if not claim.created:  # a UUID that collided: never in practice
        raise ExecutionAlreadyExists(name, flow_name)
    sweep_now_and_then(call, flow["Id"])
    if ended is not None:
        count_execution_events(ended.events)
        return _view(claim.fields, flow)
    await call.store.redis.incr(runcount.key_for(call.account, tag, call.settings.running_shards))  # the running-executions cap (issue 7)
    await call.publisher.publish(tag)
    fields = await _until_end(call, flow["Id"], name, tag, limit + call.settings.express_grace_seconds)
    return _view(fields or claim.fields, flow)


async def _until_end(call: Call, flow_id: str, name: str, tag: str, timeout: float) -> dict[str, str] | None:
    """The execution's fields once it has ended, or as they are when `timeout` seconds have passed."""

    async def read(watch: bool) -> dict[str, str] | None:
        return await call.store.read_execution(flow_id, name, watch=call.waiters.mark if watch else False)

    result: dict[str, str] | None = await call.waiters.until_end(tag, read, timeout)
    return result


def _view(fields: dict[str, str], flow: dict[str, str]) -> dict[str, Any]:
    """The StartSyncExecution response fields."""
    view: dict[str, Any] = {
        "Name": fields.get("name", ""),
        "FlowName": fields.get("flow", "") or flow["Name"],
        "Status": fields.get("status", ""),
        "Output": fields.get("output", ""),
        "ErrorCode": fields.get("error", ""),
        "ErrorMessage": fields.get("cause", ""),
        "StartedTime": rfc3339_ms(int(fields["started"])) if fields.get("started") else "",
        "StoppedTime": rfc3339_ms(int(fields["stopped"])) if fields.get("stopped") else "",
    }
    if flow.get("Environment"):
        view["Environment"] = json.loads(flow["Environment"])
    return view
