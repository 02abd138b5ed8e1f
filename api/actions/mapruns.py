"""DescribeMapRun and UpdateMapRun (distributed Map, issue 16), and the children of a MapRun for ListExecutions."""
from __future__ import annotations

import math
from typing import Any

from api.actions.context import Call
from api.actions.flows import get_flow
from api.params import optional, required
from common import keys
from common.errors import ExecutionNotExists, InvalidArgument, MapRunAlreadyCompleted, MapRunNotExists
from common.mapruns import children_page, describe_view, drive_message, read_view, run_tag
from common.records import dumps


async def _run(call: Call) -> tuple[dict[str, str], str, dict[str, str]]:
    """(flow, MapRun tag, record view fields) of the MapRun the parameters name; 404s as the cloud's."""
    p = call.params
    flow_name, execution, name = required(p, "FlowName"), required(p, "ExecutionName"), required(p, "MapRunName")
    flow = await get_flow(call, flow_name)
    if await call.store.read_execution(flow["Id"], execution) is None:
        raise ExecutionNotExists(execution, flow_name)
    tag = run_tag(flow["Id"], name)
    fields = await read_view(call.store.redis, flow["Id"], name)
    if fields is None or fields["pname"] != execution:
        raise MapRunNotExists(name, execution)
    return flow, tag, fields


async def describe_map_run(call: Call) -> dict[str, Any]:
    """DescribeMapRun: status, limits in force and item counts (read in one command: they add up to Total)."""
    _, _, fields = await _run(call)
    return describe_view(fields)


def _number(call: Call, name: str, lo: float, hi: float, integer: bool) -> float | None:
    raw = optional(call.params, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(message=f"{name} must be a number, not '{raw[:40]}'.") from None
    if not math.isfinite(value) or value < lo or value > hi or (integer and not value.is_integer()):
        raise InvalidArgument(message=f"{name} must be {'an integer' if integer else 'a number'} from {lo:g} to {hi:g}, not '{raw[:40]}'.")
    return value


async def update_map_run(call: Call) -> dict[str, Any]:
    """UpdateMapRun: new concurrency and tolerances, in force at once (the run's driver is woken to apply them)."""
    concurrency = _number(call, "Concurrency", 1, 2**31 - 1, True)
    count = _number(call, "ToleratedFailedCount", 0, 2**31 - 1, True)
    percentage = _number(call, "ToleratedFailedPercentage", 0, 100, False)
    flow, tag, fields = await _run(call)
    pairs: list[str] = []
    if concurrency is not None:
        pairs += ["conc", str(max(1, min(int(concurrency), call.settings.maprun_max_concurrency)))]
    if count is not None:
        pairs += ["tcount", str(int(count))]
    if percentage is not None:
        pairs += ["tpct", repr(percentage)]
    event = dumps({"t": "Updated"})
    result = await call.store.scripts.maprun_update(
        keys=[keys.maprun(tag), keys.maprun_inbox(tag)], args=[event, call.now, call.settings.wake_after_ms, *pairs]
    )
    if int(result[0]) == -1:
        raise MapRunNotExists(fields["name"], fields["pname"])
    if int(result[0]) == 0:
        raise MapRunAlreadyCompleted(fields["name"], fields["pname"])
    if int(result[1]) == 1:
        queue = call.settings.activity_queue
        await call.publisher.broker.lpush(queue, drive_message(tag, queue))  # the async brokers offer LPUSH only
    conc, tcount, tpct = (v.decode() if isinstance(v, bytes) else (v or "") for v in result[2:5])
    return {
        "FlowName": flow["Name"], "ExecutionName": fields["pname"], "MapRunName": fields["name"],
        "Concurrency": int(conc or 0), "ToleratedFailedCount": int(tcount or 0), "ToleratedFailedPercentage": float(tpct or 0),
    }  # fmt: skip


async def map_run_children(call: Call, flow_id: str, name: str, start: str | None, limit: int) -> tuple[list[dict[str, str]], str | None]:
    """ListExecutions with MapRunName: the run's children in index order from child `start`, and where to go on."""
    return await children_page(call.store.redis, flow_id, name, start, limit)
