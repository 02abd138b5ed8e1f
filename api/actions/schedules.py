"""CreateSchedule, UpdateSchedule, DeleteSchedule, DescribeSchedule, ListSchedules."""
from __future__ import annotations

import uuid
from typing import Any

from api.actions.context import Call
from api.actions.flows import get_flow
from api.params import boolean, integer, json_object, optional, required, resource_name
from common.cron import Cron, CronError, parse_cron
from common.errors import (
    ConcurrentUpdateError,
    EntityTooLarge,
    FlowNotExists,
    InvalidArgument,
    ScheduleAlreadyExists,
    ScheduleNotExists,
)
from common.schedules import ScheduleStore, arm, schedule_view

LIST_DEFAULT = 60  # the docs give the range (1-1000) but no default; ListFlows' default


def _store(call: Call) -> ScheduleStore:
    return ScheduleStore(call.store.redis, call.store.scripts, call.settings.partitions)


def _cron(text: str) -> Cron:
    try:
        return parse_cron(text)
    except CronError as exc:
        raise InvalidArgument(message=str(exc)) from None


def _payload(call: Call) -> str | None:
    """The Payload parameter if given (a JSON object within the state size limit): it becomes the executions' input."""
    raw = optional(call.params, "Payload")
    if raw == "":
        return None
    if len(raw.encode("utf-8")) > call.settings.max_state_bytes:
        raise EntityTooLarge(call.settings.max_state_bytes)
    json_object(raw, "Payload", call.settings.max_json_depth)
    return raw


def _raise_for(status: str, name: str, flow_name: str) -> None:
    if status == "flow":
        raise FlowNotExists(flow_name)
    if status == "exists":
        raise ScheduleAlreadyExists(name, flow_name)
    if status == "missing":
        raise ScheduleNotExists(name, flow_name)
    if status == "conflict":
        raise ConcurrentUpdateError()
    raise AssertionError(f"put_schedule answered {status!r}")


async def create_schedule(call: Call) -> dict[str, Any]:
    """CreateSchedule: a named cron schedule that starts executions of the flow with Payload as input."""
    p = call.params
    flow_name = required(p, "FlowName")
    name = resource_name(required(p, "ScheduleName"), "ScheduleName")
    text = required(p, "CronExpression")
    cron = _cron(text)
    payload = _payload(call)
    enable = boolean(p, "Enable", default=False)
    flow = await get_flow(call, flow_name)
    nxt, anchor = arm(cron, call.now)
    fields = {
        "ScheduleId": str(uuid.uuid4()),
        "ScheduleName": name,
        "FlowName": flow["Name"],
        "CronExpression": text,
        "Payload": payload or "",
        "Description": optional(p, "Description"),
        "Enable": "1" if enable else "0",
        "CreatedTime": str(call.now),
        "LastModifiedTime": str(call.now),
        "next": nxt if enable else "",
        "anchor": anchor,
    }
    status, record = await _store(call).put("create", call.account, flow, name, fields)
    if status != "ok":
        _raise_for(status, name, flow_name)
    return schedule_view(record)


async def update_schedule(call: Call) -> dict[str, Any]:
    """UpdateSchedule: change the expression, payload, description or enablement; ticks restart from now
    when the expression changes or the schedule is enabled again."""
    p = call.params
    flow_name, name = required(p, "FlowName"), required(p, "ScheduleName")
    text = optional(p, "CronExpression")
    cron = _cron(text) if text else None
    payload = _payload(call)
    enable_given = p.get("Enable") not in (None, "")
    enable = boolean(p, "Enable")
    flow = await get_flow(call, flow_name)
    store = _store(call)
    record = await store.get(call.account, flow["Id"], name)
    if record is None:
        raise ScheduleNotExists(name, flow_name)
    fields: dict[str, str] = {"LastModifiedTime": str(call.now)}
    if cron is not None:
        fields["CronExpression"] = text
    if payload is not None:
        fields["Payload"] = payload
    if "Description" in p:
        fields["Description"] = p["Description"]
    was_enabled = record.get("Enable") == "1"
    enabled = enable if enable_given else was_enabled
    fields["Enable"] = "1" if enabled else "0"
    changed = cron is not None and text != record.get("CronExpression")
    if not enabled:
        fields["next"] = ""
    elif changed or not was_enabled:
        fields["next"], fields["anchor"] = arm(cron or _cron(record["CronExpression"]), call.now)
    status, updated = await store.put("update", call.account, flow, name, fields, rev=record.get("rev", ""))
    if status != "ok":
        _raise_for(status, name, flow_name)
    return schedule_view(updated)


async def delete_schedule(call: Call) -> dict[str, Any]:
    """DeleteSchedule."""
    flow_name, name = required(call.params, "FlowName"), required(call.params, "ScheduleName")
    flow = await get_flow(call, flow_name)
    if not await _store(call).delete(call.account, flow["Id"], name):
        raise ScheduleNotExists(name, flow_name)
    return {}


async def describe_schedule(call: Call) -> dict[str, Any]:
    """DescribeSchedule."""
    flow_name, name = required(call.params, "FlowName"), required(call.params, "ScheduleName")
    flow = await get_flow(call, flow_name)
    record = await _store(call).get(call.account, flow["Id"], name)
    if record is None:
        raise ScheduleNotExists(name, flow_name)
    return schedule_view(record)


async def list_schedules(call: Call) -> dict[str, Any]:
    """ListSchedules, paged by schedule name (NextToken is the name of the first schedule of the next page)."""
    limit = integer(call.params, "Limit", default=LIST_DEFAULT, lo=1, hi=1000)
    flow = await get_flow(call, required(call.params, "FlowName"))
    rows, nxt = await _store(call).list(call.account, flow["Id"], optional(call.params, "NextToken") or None, limit)
    out: dict[str, Any] = {"Schedules": [schedule_view(r) for r in rows]}
    if nxt:
        out["NextToken"] = nxt
    return out
