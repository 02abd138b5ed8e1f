"""How flows, executions and history are laid out in Redis hashes and lists (pure encode/decode)."""
from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from common import jsonlimits
from common.interpreter.model import HistoryEvent
from common.timefmt import rfc3339_ms

# Fields of the execution record that DescribeExecution and friends read (HMGET), in view_fields' order.
# The record does not store the execution's name or flow id: both are in its key (keys.execution_tag).
EXECUTION_VIEW_FIELDS = ("flow", "status", "input", "output", "started", "stopped", "defid", "error", "cause", "qual", "env")


def view_fields(name: str, raw: Any) -> dict[str, str]:
    """The fields execution_view takes, from an HMGET of EXECUTION_VIEW_FIELDS of execution `name`."""
    fields = dict(zip(EXECUTION_VIEW_FIELDS, (as_str(v) for v in raw), strict=True))
    fields["name"] = name
    return fields


def dumps(value: Any) -> str:
    """Compact JSON, the form every JSON value is stored and answered in (never NaN or Infinity: ValueError)."""
    return jsonlimits.dumps(value)


def definition_id(text: str) -> str:
    """Content address of a definition text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    """A redis-py HGETALL answer (bytes or str) as str -> str."""
    return {as_str(k): as_str(v) for k, v in raw.items()}


def decode_pairs(raw: list[Any]) -> dict[str, str]:
    """A flat [field, value, ...] list (HGETALL through Lua) as str -> str."""
    return {as_str(raw[i]): as_str(raw[i + 1]) for i in range(0, len(raw), 2)}


def as_str(value: Any) -> str:
    """A Redis reply value as text: bytes decoded (UTF-8), a missing value (None, Lua's false) as ""."""
    if value is None or value is False:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def new_execution_fields(
    *, account: str, flow: str, raw_input: str, def_id: str, qualifier: str,
    callback: str, started: int, version: str = "", trace: str = "", depth: int = 0,
) -> list[str]:
    """Field/value pairs of a just-claimed execution record (version: the one a Qualifier chose;
    trace: the traceparent its drives continue, common/tracing.py, stored only when tracing is on;
    depth: how deeply nested a child flow is, common/lineage.py, only written when above 0).

    Not stored: the flow id and the name (the record's key holds both, keys.execution_tag), nor the
    history length before the first commit writes it (`hseq`, read as 0 when missing). Each field a
    claim writes costs redis-server about 1% of an execution's work (issue 17, bench/rediscost.py),
    and a record's memory. Records written before this still hold them; no reader uses them."""
    fields = [
        "acct", account, "flow", flow, "status", "Running", "input", raw_input, "defid", def_id, "started", str(started),
    ]  # fmt: skip
    # Optional fields only when set (every reader takes a missing field as ''): fewer values through claim.lua.
    for field, value in (("qual", qualifier), ("ver", version), ("cb", callback), ("tp", trace)):
        if value:
            fields += [field, value]
    if depth > 0:
        fields += ["depth", str(depth)]
    return fields


def execution_view(fields: dict[str, str], definition: str) -> dict[str, Any]:
    """The API's execution object (DescribeExecution, StartExecution, ListExecutions)."""
    view: dict[str, Any] = {
        "Name": fields.get("name", ""),
        "FlowName": fields.get("flow", ""),
        "FlowDefinition": definition,
        "Input": fields.get("input", ""),
        "Output": fields.get("output", ""),
        "Status": fields.get("status", ""),
        "StartedTime": rfc3339_ms(int(fields["started"])) if fields.get("started") else "",
        "StoppedTime": rfc3339_ms(int(fields["stopped"])) if fields.get("stopped") else "",
    }
    if fields.get("error") or fields.get("cause"):
        # Not in the SDK model (it ignores unknown keys); tells a user why an execution failed.
        view["ErrorCode"] = fields.get("error", "")
        view["ErrorMessage"] = fields.get("cause", "")
    if fields.get("qual"):
        view["Qualifier"] = fields["qual"]
    if fields.get("env"):  # the flow's Environment when the execution started (as StartSyncExecution answers it)
        view["Environment"] = json.loads(fields["env"])
    return view


HISTORY_COMPRESSION = 6  # zlib level: one drive's events repeat names and keys, so they shrink ~5x


def encode_history_chunk(events: list[HistoryEvent]) -> bytes:
    """One drive's history events as the stored chunk: zlib-compressed compact JSON (b'' for none)."""
    if not events:
        return b""
    return zlib.compress(dumps([e.to_json() for e in events]).encode("utf-8"), HISTORY_COMPRESSION)


def decode_history(chunks: list[Any]) -> list[HistoryEvent]:
    """All stored chunks of an execution, in order, as events (plain-JSON chunks of older data too)."""
    out: list[HistoryEvent] = []
    for chunk in chunks:
        raw = chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8")
        if raw[:1] != b"[":
            raw = zlib.decompress(raw)
        out.extend(HistoryEvent.from_json(event) for event in json.loads(raw))
    return out


def history_view(event: HistoryEvent) -> dict[str, Any]:
    """The API's history event object."""
    return {
        "EventId": event.id,
        "ScheduleEventId": event.sched,
        "Type": event.type,
        "StepName": event.step,
        "Time": rfc3339_ms(event.time),
        "EventDetail": dumps(event.detail),
    }


FLOW_FIELDS = (
    "Id", "Name", "Definition", "DefId", "Description", "Type", "RoleArn", "ExecutionMode",
    "Environment", "ExternalStorageLocation", "ResourceGroupId", "CreatedTime", "LastModifiedTime",
)  # fmt: skip


def flow_view(fields: dict[str, str]) -> dict[str, Any]:
    """The API's flow object (CreateFlow, DescribeFlow, ListFlows, UpdateFlow)."""
    view: dict[str, Any] = {k: fields.get(k, "") for k in FLOW_FIELDS if k not in ("DefId", "Environment")}
    for key in ("CreatedTime", "LastModifiedTime"):
        view[key] = rfc3339_ms(int(fields[key])) if fields.get(key) else ""
    if fields.get("Environment"):
        view["Environment"] = json.loads(fields["Environment"])
    return view
