"""The 29 actions of API 2019-03-15 as data: required and typed parameters (spec Appendix A), policy resource.

`validate(action, params)` runs before any handler, so every action, implemented or not, answers
400 `MissingRequiredParams` naming the first missing parameter, and 400 `InvalidArgument` naming a
typed parameter whose value does not parse or is out of range. Handlers keep their own checks.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from common import jsonlimits
from common.errors import InvalidArgument, MissingRequiredParams
from common.timefmt import parse_rfc3339


class Kind(StrEnum):
    """How a parameter's string value is read."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    OBJECT = "object"  # a JSON object sent as a string (Environment)
    OBJECTS = "objects"  # a JSON array of objects sent as a string (RoutingConfigurations)
    TIME = "time"  # RFC 3339
    ENUM = "enum"


class Scope(StrEnum):
    """Which resource a call acts on, for policies: `acs:fnf:{region}:{account}:<resource>`."""

    FLOW = "flow"  # flow/{name}
    EXECUTION = "execution"  # flow/{name}/execution/{execution}
    ALL_FLOWS = "all_flows"  # flow/*  (listing)
    ACCOUNT = "account"  # *  (DescribeRegions)
    TASK = "task"  # flow/*/execution/*  (a task token names its execution only inside the token)


@dataclass(frozen=True)
class Param:
    """One request parameter: its kind, whether it is required, its range (numbers) or length (strings)."""

    kind: Kind = Kind.STR
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    """One action: its parameters in documented order, and the resource a policy sees."""

    params: Mapping[str, Param]
    scope: Scope = Scope.FLOW
    flow_param: str = "FlowName"
    execution_param: str = "ExecutionName"


REQ = Param(required=True)
OPT = Param()
STATUSES = ("Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut")


def _limit(hi: int) -> Param:
    return Param(Kind.INT, lo=1, hi=hi)


ERROR = Param(Kind.STR, lo=1, hi=128)  # documented: 1 to 128 characters
CAUSE = Param(Kind.STR, lo=1, hi=4096)  # documented: 1 to 4,096 characters
ENVIRONMENT = Param(Kind.OBJECT)
ROUTES = Param(Kind.OBJECTS)
ROUTES_REQUIRED = Param(Kind.OBJECTS, required=True)
ENABLE = Param(Kind.BOOL)
PAYLOAD = Param(Kind.OBJECT)

SPECS: dict[str, ActionSpec] = {
    "CreateFlow": ActionSpec(
        {
            "Name": REQ,
            "Definition": REQ,
            # Appendix A marks Description and Type required; the SDK does not enforce it and neither
            # do we (docs/compatibility.md, Flows).
            "Description": OPT,
            "Type": OPT,
            "Environment": ENVIRONMENT,
            "ExecutionMode": Param(Kind.ENUM, choices=("", "Standard", "Express")),
            "ExternalStorageLocation": OPT,
            "ResourceGroupId": OPT,
            "RoleArn": OPT,
        },
        flow_param="Name",
    ),
    "UpdateFlow": ActionSpec(
        {"Name": REQ, "Definition": OPT, "Description": OPT, "Environment": ENVIRONMENT, "RoleArn": OPT, "Type": OPT},
        flow_param="Name",
    ),
    "DeleteFlow": ActionSpec({"Name": REQ}, flow_param="Name"),
    "DescribeFlow": ActionSpec({"Name": REQ, "FlowVersion": OPT}, flow_param="Name"),
    "ListFlows": ActionSpec({"Limit": _limit(999), "NextToken": OPT, "ResourceGroupId": OPT}, scope=Scope.ALL_FLOWS),
    "PublishFlowVersion": ActionSpec({"FlowName": REQ, "Description": OPT}),
    "ListFlowVersions": ActionSpec({"FlowName": REQ, "Limit": _limit(1000), "NextToken": OPT}),
    "DeleteFlowVersion": ActionSpec({"FlowName": REQ, "FlowVersion": REQ}),
    "CreateFlowAlias": ActionSpec({"FlowName": REQ, "Name": REQ, "RoutingConfigurations": ROUTES_REQUIRED, "Description": OPT}),
    "UpdateFlowAlias": ActionSpec({"FlowName": REQ, "Name": REQ, "RoutingConfigurations": ROUTES, "Description": OPT}),
    "DescribeFlowAlias": ActionSpec({"FlowName": REQ, "Name": REQ}),
    "ListFlowAliases": ActionSpec({"FlowName": REQ, "Limit": _limit(1000), "NextToken": OPT}),
    "DeleteFlowAlias": ActionSpec({"FlowName": REQ, "Name": REQ}),
    "StartExecution": ActionSpec(
        {"FlowName": REQ, "ExecutionName": OPT, "Input": OPT, "Qualifier": OPT, "CallbackFnFTaskToken": OPT}
    ),
    "StartSyncExecution": ActionSpec({"FlowName": REQ, "ExecutionName": OPT, "Input": OPT, "Qualifier": OPT}),
    "StopExecution": ActionSpec({"FlowName": REQ, "ExecutionName": REQ, "Error": ERROR, "Cause": CAUSE}, scope=Scope.EXECUTION),
    "DescribeExecution": ActionSpec(
        {"FlowName": REQ, "ExecutionName": REQ, "WaitTimeSeconds": Param(Kind.INT, lo=0, hi=60)}, scope=Scope.EXECUTION
    ),
    "ListExecutions": ActionSpec(
        {
            "FlowName": REQ,
            "Limit": _limit(100),
            "NextToken": OPT,
            "ExecutionNamePrefix": OPT,
            "MapRunName": OPT,
            "MetadataOnly": Param(Kind.BOOL),
            "Qualifier": OPT,
            "StartedTimeBegin": Param(Kind.TIME),
            "StartedTimeEnd": Param(Kind.TIME),
            "Status": Param(Kind.ENUM, choices=STATUSES),
        }
    ),
    "GetExecutionHistory": ActionSpec(
        {"FlowName": REQ, "ExecutionName": REQ, "Limit": _limit(1000), "NextToken": OPT}, scope=Scope.EXECUTION
    ),
    "ReportTaskSucceeded": ActionSpec({"TaskToken": REQ, "Output": REQ}, scope=Scope.TASK),
    "ReportTaskFailed": ActionSpec({"TaskToken": REQ, "Error": Param(Kind.STR, required=True, lo=1, hi=128), "Cause": CAUSE}, scope=Scope.TASK),
    "CreateSchedule": ActionSpec(
        {
            "FlowName": REQ,
            "ScheduleName": REQ,
            "CronExpression": REQ,
            "Description": OPT,
            "Enable": ENABLE,
            "Payload": PAYLOAD,
        }
    ),
    "UpdateSchedule": ActionSpec(
        {
            "FlowName": REQ,
            "ScheduleName": REQ,
            "CronExpression": OPT,
            "Description": OPT,
            "Enable": ENABLE,
            "Payload": PAYLOAD,
        }
    ),
    "DeleteSchedule": ActionSpec({"FlowName": REQ, "ScheduleName": REQ}),
    "DescribeSchedule": ActionSpec({"FlowName": REQ, "ScheduleName": REQ}),
    "ListSchedules": ActionSpec({"FlowName": REQ, "Limit": _limit(1000), "NextToken": OPT}),
    "DescribeMapRun": ActionSpec({"FlowName": REQ, "ExecutionName": REQ, "MapRunName": REQ}, scope=Scope.EXECUTION),
    "UpdateMapRun": ActionSpec(
        {
            "FlowName": REQ,
            "ExecutionName": REQ,
            "MapRunName": REQ,
            "Concurrency": Param(Kind.INT, lo=1, hi=10000),
            "ToleratedFailedCount": Param(Kind.INT, lo=0, hi=2**31 - 1),
            "ToleratedFailedPercentage": Param(Kind.FLOAT, lo=0, hi=100),
        },
        scope=Scope.EXECUTION,
    ),
    "DescribeRegions": ActionSpec({"AcceptLanguage": OPT}, scope=Scope.ACCOUNT),
    # OpenFnF extension (issue 18): not in the cloud's API; policies name it fnf:RedriveExecution.
    "RedriveExecution": ActionSpec({"FlowName": REQ, "ExecutionName": REQ}, scope=Scope.EXECUTION),
}

_INT_RE = re.compile(r"^[+-]?[0-9]{1,18}$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?$")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _shown(raw: str) -> str:
    """A value quoted in a message, cut to a readable length."""
    return raw if len(raw) <= 40 else raw[:40] + "..."


def _number(name: str, raw: str, spec: Param) -> float:
    text = raw.strip()
    if spec.kind is Kind.INT:
        if not _INT_RE.match(text):
            raise InvalidArgument(message=f"{name} must be an integer, not '{_shown(raw)}'.")
        value: float = int(text)
    else:
        if not _FLOAT_RE.match(text):
            raise InvalidArgument(message=f"{name} must be a number, not '{_shown(raw)}'.")
        value = float(text)
        if not math.isfinite(value):
            raise InvalidArgument(message=f"{name} must be a finite number, not '{_shown(raw)}'.")
    if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
        lo, hi = (int(b) if b is not None and float(b).is_integer() else b for b in (spec.lo, spec.hi))
        raise InvalidArgument(message=f"{name} must be between {lo} and {hi}, not {_shown(text)}.")
    return value


def _json(name: str, raw: str, want: Kind, max_depth: int) -> None:
    try:
        value = jsonlimits.loads(raw, max_depth)
    except jsonlimits.JsonRefused as exc:
        raise InvalidArgument(message=f"{name} {exc}.") from None
    except ValueError:
        raise InvalidArgument(message=f"{name} must be a JSON {'object' if want is Kind.OBJECT else 'array'}, not '{_shown(raw)}'.") from None
    if want is Kind.OBJECT:
        if not isinstance(value, dict):
            raise InvalidArgument(message=f"{name} must be a JSON object, not '{_shown(raw)}'.")
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidArgument(message=f"{name} must be a JSON array of objects, not '{_shown(raw)}'.")


def check_value(name: str, raw: str, spec: Param, max_json_depth: int = jsonlimits.DEFAULT_MAX_DEPTH) -> None:
    """InvalidArgument naming `name` unless `raw` is a valid value of this parameter (JSON at most `max_json_depth` deep)."""
    kind = spec.kind
    if kind is Kind.STR:
        if spec.hi is not None and len(raw) > spec.hi:
            raise InvalidArgument(message=f"{name} must be at most {int(spec.hi)} characters long, not {len(raw)}.")
    elif kind in (Kind.INT, Kind.FLOAT):
        _number(name, raw, spec)
    elif kind is Kind.BOOL:
        if raw.strip().lower() not in _BOOLS:
            raise InvalidArgument(message=f"{name} must be true or false, not '{_shown(raw)}'.")
    elif kind in (Kind.OBJECT, Kind.OBJECTS):
        _json(name, raw, kind, max_json_depth)
    elif kind is Kind.TIME:
        try:
            parse_rfc3339(raw)
        except (ValueError, OverflowError):
            raise InvalidArgument(message=f"{name} must be an RFC 3339 time such as 2019-01-01T01:01:01Z, not '{_shown(raw)}'.") from None
    elif kind is Kind.ENUM and raw not in spec.choices:
        shown = ", ".join(c or "''" for c in spec.choices)
        raise InvalidArgument(message=f"{name} must be one of {shown}, not '{_shown(raw)}'.")


def validate(action: str, params: Mapping[str, str], max_json_depth: int = jsonlimits.DEFAULT_MAX_DEPTH) -> None:
    """Raise the documented 400 for the first missing required parameter, then for the first bad typed one."""
    spec = SPECS[action]
    for name, param in spec.params.items():
        if param.required and not params.get(name):
            raise MissingRequiredParams(name)
    for name, param in spec.params.items():
        raw = params.get(name)
        # An empty optional value means "not given", as the SDKs send it and the handlers read it.
        if raw is None or (raw == "" and not param.required):
            continue
        check_value(name, raw, param, max_json_depth)
