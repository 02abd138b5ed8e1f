"""CreateFlow, DescribeFlow, UpdateFlow, DeleteFlow, ListFlows."""
from __future__ import annotations

import json
import uuid
from typing import Any

from api.actions.context import Call
from api.params import integer, optional, required, resource_name
from common.errors import (
    FlowAlreadyExists,
    FlowNotExists,
    FlowVersionNotExists,
    InvalidArgument,
)
from common.express import ExpressLimitError, check_express  # issue 8
from common.fdl import FdlError, FlowDef, parse_definition
from common.mapruns import check_express_children
from common.records import definition_id, flow_view
from common.schedules import ScheduleStore  # issue 8

EXECUTION_MODES = {"": "Standard", "Standard": "Standard", "Express": "Express"}
EXPRESS_CHILD_SECONDS = 300  # an Express child's limit, as the cloud's Express executions


def check_definition(text: str, flow_name: str) -> FlowDef:
    """Parse a Definition parameter; InvalidArgument naming where and what if it cannot run."""
    try:
        flow = parse_definition(text)
    except FdlError as exc:
        raise InvalidArgument(message=f"Definition is invalid: {exc}") from None
    if flow.name is not None and flow.name != flow_name:
        raise InvalidArgument(message=f"Definition name '{flow.name}' must equal the flow Name '{flow_name}'.")
    try:
        check_express_children(flow, EXPRESS_CHILD_SECONDS)  # a distributed Map's Express children (issue 16)
    except ExpressLimitError as exc:
        raise InvalidArgument(message=f"Definition is invalid: {exc}") from None
    return flow


def check_express_limits(call: Call, text: str) -> None:
    """InvalidArgument if an Express flow's definition is over the Express limits (issue 8)."""
    try:
        check_express(text, call.settings.express_timeout_seconds)
    except ExpressLimitError as exc:
        raise InvalidArgument(message=f"Definition is invalid for an Express flow: {exc}") from None


def _environment(raw: str) -> str:
    """Validate an Environment JSON string ({"Variables": [{Name, Value, Description}]}) and normalise it."""
    try:
        env = json.loads(raw)
    except ValueError:
        raise InvalidArgument(message="Environment must be a JSON object.") from None
    variables = env.get("Variables", []) if isinstance(env, dict) else None
    if not isinstance(variables, list) or not all(isinstance(v, dict) and isinstance(v.get("Name"), str) for v in variables):
        raise InvalidArgument(message='Environment must look like {"Variables": [{"Name": "...", "Value": "..."}]}.')
    return json.dumps(env, separators=(",", ":"))


def _type(params: dict[str, str]) -> str:
    kind = optional(params, "Type", "FDL")
    if kind != "FDL":
        raise InvalidArgument(message=f"Type must be FDL, not '{kind[:40]}'.")
    return kind


async def create_flow(call: Call) -> dict[str, Any]:
    """CreateFlow: a new flow in the caller's account."""
    p = call.params
    name = resource_name(required(p, "Name"), "Name")
    definition = required(p, "Definition")
    mode = optional(p, "ExecutionMode")
    if mode not in EXECUTION_MODES:
        raise InvalidArgument(message=f"ExecutionMode must be Standard or Express, not '{mode[:40]}'.")
    if EXECUTION_MODES[mode] == "Express":
        check_express_limits(call, definition)
    check_definition(definition, name)
    def_id = definition_id(definition)
    fields = {
        "Id": str(uuid.uuid4()),
        "Name": name,
        "Definition": definition,
        "DefId": def_id,
        "Description": optional(p, "Description"),
        "Type": _type(p),
        "RoleArn": optional(p, "RoleArn"),
        "ExecutionMode": EXECUTION_MODES[mode],
        "ExternalStorageLocation": optional(p, "ExternalStorageLocation"),
        "ResourceGroupId": optional(p, "ResourceGroupId"),
        "CreatedTime": str(call.now),
        "LastModifiedTime": str(call.now),
    }
    if p.get("Environment"):
        fields["Environment"] = _environment(p["Environment"])
    if not await call.store.create_flow(call.account, name, def_id, definition, fields):
        raise FlowAlreadyExists(name)
    return flow_view(fields)


async def get_flow(call: Call, name: str) -> dict[str, str]:
    """The caller's flow by name, or FlowNotExists."""
    flow = await call.store.get_flow(call.account, name)
    if flow is None:
        raise FlowNotExists(name)
    return flow


async def describe_flow(call: Call) -> dict[str, Any]:
    """DescribeFlow; with FlowVersion, the flow as that version froze it."""
    flow = await get_flow(call, required(call.params, "Name"))
    version_no = optional(call.params, "FlowVersion")
    if version_no:
        version = await call.store.versions.get(call.account, flow["Name"], version_no)
        if version is None:
            raise FlowVersionNotExists(version_no, flow["Name"])
        definition = await call.store.definition(version["DefId"])
        flow = {**flow, "Definition": definition, "DefId": version["DefId"], "Description": version.get("Description", "")}
    return flow_view(flow)


async def update_flow(call: Call) -> dict[str, Any]:
    """UpdateFlow: change the definition, description, role or environment."""
    p = call.params
    name = required(p, "Name")
    fields: dict[str, str] = {"LastModifiedTime": str(call.now)}
    definition = None
    if p.get("Definition"):
        current = await call.store.get_flow(call.account, name)  # Express limits (issue 8)
        if current is not None and current.get("ExecutionMode") == "Express":
            check_express_limits(call, p["Definition"])
        check_definition(p["Definition"], name)
        definition = (definition_id(p["Definition"]), p["Definition"])
        fields.update(Definition=p["Definition"], DefId=definition[0])
    for param in ("Description", "RoleArn"):
        if param in p:
            fields[param] = p[param]
    if "Type" in p:
        fields["Type"] = _type(p)
    if p.get("Environment"):
        fields["Environment"] = _environment(p["Environment"])
    updated = await call.store.update_flow(call.account, name, fields, definition)
    if updated is None:
        raise FlowNotExists(name)
    return flow_view(updated)


async def delete_flow(call: Call) -> dict[str, Any]:
    """DeleteFlow."""
    name = required(call.params, "Name")
    flow = await call.store.get_flow(call.account, name)  # its schedules go with it (issue 8)
    if not await call.store.delete_flow(call.account, name):
        raise FlowNotExists(name)
    if flow is not None:
        await ScheduleStore(call.store.redis, call.store.scripts, call.settings.partitions).purge_flow(call.account, flow["Id"])
    return {}


async def list_flows(call: Call) -> dict[str, Any]:
    """ListFlows, paged by flow name."""
    limit = integer(call.params, "Limit", default=60, lo=1, hi=999)
    flows, nxt = await call.store.list_flows(call.account, optional(call.params, "NextToken") or None, limit)
    out: dict[str, Any] = {"Flows": [flow_view(f) for f in flows]}
    if nxt:
        out["NextToken"] = nxt
    return out
