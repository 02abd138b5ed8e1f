"""Flow versions and aliases: PublishFlowVersion, ListFlowVersions, DeleteFlowVersion, *FlowAlias*."""
from __future__ import annotations

import json
from typing import Any

from api.actions.context import Call
from api.actions.flows import get_flow
from api.params import integer, optional, required, resource_name
from common import control
from common.control import Resolved
from common.errors import (
    FlowAliasAlreadyExists,
    FlowAliasNotExists,
    FlowNotExists,
    FlowVersionNotExists,
    InvalidArgument,
)
from common.timefmt import rfc3339_ms


async def resolve_qualifier(call: Call, flow: dict[str, str], qualifier: str) -> Resolved:
    """The definition to run: the flow's current one, a version, or an alias's weighted pick (common/control.py)."""
    return await control.resolve_qualifier(call.store, call.account, flow, qualifier)


def _routing(raw: str) -> list[dict[str, Any]]:
    """Parse and check RoutingConfigurations: one or two distinct versions, integer weights summing to 100."""
    try:
        routes = json.loads(raw)
    except ValueError:
        raise InvalidArgument(message="RoutingConfigurations must be a JSON list.") from None
    if not isinstance(routes, list) or not 1 <= len(routes) <= 2:
        raise InvalidArgument(message="RoutingConfigurations must list one or two versions.")
    out = []
    for i, route in enumerate(routes):
        if not isinstance(route, dict) or "Version" not in route or "Weight" not in route:
            raise InvalidArgument(message=f"RoutingConfigurations[{i}] must have Version and Weight.")
        version, weight = str(route["Version"]), route["Weight"]
        if not version.isdigit():
            raise InvalidArgument(message=f"RoutingConfigurations[{i}].Version must be a version number, not '{version[:20]}'.")
        try:
            weight = int(str(weight))
        except ValueError:
            raise InvalidArgument(message=f"RoutingConfigurations[{i}].Weight must be an integer.") from None
        if not 0 <= weight <= 100:
            raise InvalidArgument(message=f"RoutingConfigurations[{i}].Weight must be between 0 and 100.")
        out.append({"Version": version, "Weight": weight})
    if len({r["Version"] for r in out}) != len(out):
        raise InvalidArgument(message="RoutingConfigurations must name distinct versions.")
    if sum(r["Weight"] for r in out) != 100:
        raise InvalidArgument(message="RoutingConfigurations weights must sum to 100.")
    return out


def _alias_view(alias: dict[str, Any], weight_as_str: bool = False) -> dict[str, Any]:
    routes = [{"Version": r["Version"], "Weight": str(r["Weight"]) if weight_as_str else int(r["Weight"])} for r in alias["RoutingConfigurations"]]
    return {
        "Name": alias["Name"],
        "Description": alias.get("Description", ""),
        "RoutingConfigurations": routes,
        "CreatedTime": rfc3339_ms(int(alias["CreatedTime"])),
        "LastModifiedTime": rfc3339_ms(int(alias["LastModifiedTime"])),
    }


def _version_view(version: dict[str, Any]) -> dict[str, Any]:
    return {"Version": version["Version"], "Description": version.get("Description", ""), "CreatedTime": rfc3339_ms(int(version["CreatedTime"]))}


def _page(items: list[dict[str, Any]], key: str, params: dict[str, str], default: int, hi: int) -> tuple[list[dict[str, Any]], str | None]:
    """Page a sorted list by `key`: NextToken is the key of the first item of the next page."""
    limit = integer(params, "Limit", default=default, lo=1, hi=hi)
    token = optional(params, "NextToken")
    start = next((i for i, item in enumerate(items) if str(item[key]) == token), len(items)) if token else 0
    page = items[start : start + limit + 1]
    return page[:limit], (str(page[limit][key]) if len(page) > limit else None)


async def publish_flow_version(call: Call) -> dict[str, Any]:
    """PublishFlowVersion: freeze the flow's current definition as version N."""
    flow_name = required(call.params, "FlowName")
    description = optional(call.params, "Description")
    version = await call.store.versions.publish(call.account, flow_name, description, call.now)
    if not version:
        raise FlowNotExists(flow_name)
    return {"FlowName": flow_name, "Version": str(version), "Description": description, "CreatedTime": rfc3339_ms(call.now)}


async def list_flow_versions(call: Call) -> dict[str, Any]:
    """ListFlowVersions, in version order."""
    flow = await get_flow(call, required(call.params, "FlowName"))
    versions = await call.store.versions.all(call.account, flow["Name"])
    page, nxt = _page(versions, "Version", call.params, default=60, hi=1000)
    out: dict[str, Any] = {"FlowVersions": [_version_view(v) for v in page]}
    if nxt:
        out["NextToken"] = nxt
    return out


def _version_error(what: str, flow: str, version: str) -> Exception:
    if what == "flow":
        return FlowNotExists(flow)
    if what.startswith("alias:"):
        return InvalidArgument(message=f"Version {version} of flow {flow} is used by alias {what[6:]}; change the alias first.")
    return FlowVersionNotExists(version, flow)


async def delete_flow_version(call: Call) -> dict[str, Any]:
    """DeleteFlowVersion (refused while an alias routes to it)."""
    flow_name, version = required(call.params, "FlowName"), required(call.params, "FlowVersion")
    outcome = await call.store.versions.delete(call.account, flow_name, version)
    if not outcome.ok:
        raise _version_error(outcome.value, flow_name, version)
    return {}


async def _put_alias(call: Call, create: bool) -> dict[str, Any]:
    p = call.params
    flow_name = required(p, "FlowName")
    name = resource_name(required(p, "Name"), "Name")
    alias: dict[str, Any] = {"Name": name}
    routes: list[dict[str, Any]] = []
    if create or p.get("RoutingConfigurations"):
        routes = _routing(required(p, "RoutingConfigurations"))
        alias["RoutingConfigurations"] = routes
    if create or "Description" in p:
        alias["Description"] = optional(p, "Description")
    outcome = await call.store.versions.put_alias(call.account, flow_name, name, alias, [r["Version"] for r in routes], call.now, create)
    if not outcome.ok:
        if outcome.value == "exists":
            raise FlowAliasAlreadyExists(name, flow_name)
        if outcome.value == "missing":
            raise FlowAliasNotExists(name, flow_name)
        raise _version_error(outcome.value, flow_name, outcome.value.removeprefix("version:"))
    written: dict[str, Any] = json.loads(outcome.value)
    return written


async def create_flow_alias(call: Call) -> dict[str, Any]:
    """CreateFlowAlias."""
    alias = await _put_alias(call, create=True)
    return {"FlowName": call.params["FlowName"], **_alias_view(alias)}


async def update_flow_alias(call: Call) -> dict[str, Any]:
    """UpdateFlowAlias: routing and/or description; the answer nests under Alias."""
    return {"Alias": _alias_view(await _put_alias(call, create=False))}


async def describe_flow_alias(call: Call) -> dict[str, Any]:
    """DescribeFlowAlias: the answer nests under Alias."""
    flow = await get_flow(call, required(call.params, "FlowName"))
    name = required(call.params, "Name")
    alias = await call.store.versions.alias(call.account, flow["Name"], name)
    if alias is None:
        raise FlowAliasNotExists(name, flow["Name"])
    return {"Alias": _alias_view(alias)}


async def list_flow_aliases(call: Call) -> dict[str, Any]:
    """ListFlowAliases, by name (Weight is a string here, as the SDK model types it)."""
    flow = await get_flow(call, required(call.params, "FlowName"))
    aliases = await call.store.versions.aliases(call.account, flow["Name"])
    page, nxt = _page(aliases, "Name", call.params, default=60, hi=1000)
    out: dict[str, Any] = {"Aliases": [_alias_view(a, weight_as_str=True) for a in page]}
    if nxt:
        out["NextToken"] = nxt
    return out


async def delete_flow_alias(call: Call) -> dict[str, Any]:
    """DeleteFlowAlias."""
    flow = await get_flow(call, required(call.params, "FlowName"))
    name = required(call.params, "Name")
    if not await call.store.versions.delete_alias(call.account, flow["Name"], name):
        raise FlowAliasNotExists(name, flow["Name"])
    return {}
