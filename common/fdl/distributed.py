"""A Map state in distributed mode (spec distributed-map.md section 2): its fields, checked, as a DistributedSpec.

Distributed iff `ProcessorConfig` (on the Map or inside its Processor) has `Mode: Distributed`, or an
`ExecutionMode` (Standard | Express) without `Mode: Inline`. Every message names the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from common.fdl import fields as f
from common.fdl.errors import FdlError

SOURCE_TYPES = ("OSS_CSV", "OSS_JSON_LIST", "OSS_OBJECTS", "OSS_INVENTORY_FILES")
MAX_CONCURRENCY = 10_000  # what the FDL accepts; the run clamps it to OPENFNF_MAPRUN_MAX_CONCURRENCY
MAX_BATCH_BYTES = 64 * 1024  # one batch is one child's input: the state input limit
DISTRIBUTED_FIELDS = frozenset(
    {"ItemReader", "ItemConstructor", "ItemBatcher", "ResultWriter", "MaxItems", "MaxItems.$", "ToleratedFailurePercentage", "ToleratedFailureCount"}
)


@dataclass(frozen=True)
class Param:
    """A constant, or an expression over the Map's input (`Key.$`) evaluated when the run starts."""

    value: Any = None
    expr: str | None = None


@dataclass(frozen=True)
class ReaderSpec:
    """ItemReader: where the items come from."""

    source_type: str
    params: dict[str, Param]  # Bucket, ObjectName, Prefix
    csv_headers: tuple[str, ...] | None = None
    max_items: Param | None = None  # ReaderConfig.MaxItems (same meaning as the Map's MaxItems)


@dataclass(frozen=True)
class BatcherSpec:
    """ItemBatcher: items per child."""

    max_items: int | None
    max_bytes: int | None
    batch_input: dict[str, Any] | None


@dataclass(frozen=True)
class WriterSpec:
    """ResultWriter: where the results go."""

    params: dict[str, Param]  # Bucket, Prefix


@dataclass(frozen=True)
class DistributedSpec:
    """Everything a distributed Map adds to the inline one."""

    mode: str  # Standard | Express: how the children run
    processor: dict[str, Any]  # {StartAt, States}: the children's definition
    items_expr: str | None = None
    reader: ReaderSpec | None = None
    item_constructor: dict[str, Any] | None = None
    batcher: BatcherSpec | None = None
    writer: WriterSpec | None = None
    max_items: Param | None = None
    max_concurrency: int = 0  # 0: the quota (OPENFNF_MAPRUN_MAX_CONCURRENCY, default 100)
    tolerated_count: int | None = None  # None: not set (with neither set, the first failure fails the run)
    tolerated_percentage: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def child_definition(self, flow_name: str | None) -> str:
        """The children's definition text: the Processor as a flow of its own (JSON, a YAML subset)."""
        doc: dict[str, Any] = {"Type": "StateMachine", "SpecVersion": "v1"}
        if flow_name:
            doc["Name"] = flow_name
        doc.update(StartAt=self.processor.get("StartAt"), States=self.processor.get("States"))
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def execution_mode(raw: dict[str, Any], label: str) -> str | None:
    """Standard | Express when the Map runs distributed, None when inline."""
    found = None
    for where, config in (("ProcessorConfig", raw.get("ProcessorConfig")), ("Processor.ProcessorConfig", _processor_config(raw))):
        if config is None:
            continue
        at = f"{label}.{where}"
        f.no_unknown(f.need_mapping(config, at), {"Mode", "ExecutionMode"}, at)
        mode = config.get("Mode")
        if mode not in (None, "Inline", "Distributed", "INLINE", "DISTRIBUTED"):
            raise FdlError(f"{at}.Mode must be Inline or Distributed, not {mode!r}")
        execution = config.get("ExecutionMode")
        if execution is not None and execution not in ("Standard", "Express"):
            raise FdlError(f"{at}.ExecutionMode must be Standard or Express, not {execution!r}")
        if mode in ("Distributed", "DISTRIBUTED") or (mode is None and execution is not None):
            found = str(execution or "Standard")
    return found


def _processor_config(raw: dict[str, Any]) -> Any:
    processor = raw.get("Processor")
    return processor.get("ProcessorConfig") if isinstance(processor, dict) else None


def inline_only_fields(raw: dict[str, Any], label: str) -> None:
    """FdlError if an inline Map uses a distributed-mode field."""
    for key in sorted(DISTRIBUTED_FIELDS):
        if raw.get(key) is not None:
            raise FdlError(f"{label}.{key} needs distributed mode (ProcessorConfig: {{ExecutionMode: Standard | Express}})")


def parse_distributed(raw: dict[str, Any], label: str, mode: str) -> DistributedSpec:
    """The distributed fields of a Map state (its Processor is parsed by the caller), or FdlError."""
    processor = f.need_mapping(raw.get("Processor"), f"{label}.Processor")
    reader = _reader(raw.get("ItemReader"), f"{label}.ItemReader")
    items = raw.get("ItemsPath")
    if reader is None and items is None:
        raise FdlError(f"{label}: a distributed Map needs ItemsPath (an expression giving the items) or ItemReader")
    if reader is None:
        f.expression(items, f"{label}.ItemsPath")
    constructor = f.constructor(raw.get("ItemConstructor"), f"{label}.ItemConstructor")
    if raw.get("MaxConcuccency") is not None and raw.get("MaxConcurrency") is not None:
        raise FdlError(f"{label}: give MaxConcurrency or MaxConcuccency (the documented spelling), not both")
    key = "MaxConcuccency" if raw.get("MaxConcuccency") is not None else "MaxConcurrency"
    concurrency = f.opt_number(raw, key, label, minimum=0, maximum=MAX_CONCURRENCY, integer=True)
    count = f.opt_number(raw, "ToleratedFailureCount", label, minimum=0, maximum=2**31 - 1, integer=True)
    percentage = f.opt_number(raw, "ToleratedFailurePercentage", label, minimum=0, maximum=100)
    return DistributedSpec(
        mode=mode,
        processor=processor,
        items_expr=None if reader is not None else str(items),
        reader=reader,
        item_constructor=constructor,
        batcher=_batcher(raw.get("ItemBatcher"), f"{label}.ItemBatcher"),
        writer=_writer(raw.get("ResultWriter"), f"{label}.ResultWriter"),
        max_items=_max_items(raw, label),
        max_concurrency=int(concurrency or 0),
        tolerated_count=None if count is None else int(count),
        tolerated_percentage=None if percentage is None else float(percentage),
        raw=raw,
    )


def _params(raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> dict[str, Param]:
    """`Name` constants and `Name.$` expressions, each a non-empty string (or an expression)."""
    f.no_unknown(raw, set(allowed) | {f"{k}.$" for k in allowed}, where)
    out: dict[str, Param] = {}
    for key in allowed:
        if raw.get(key) is not None and raw.get(f"{key}.$") is not None:
            raise FdlError(f"{where}: give {key} or {key}.$, not both")
        if raw.get(f"{key}.$") is not None:
            f.expression(raw[f"{key}.$"], f"{where}.{key}.$")
            out[key] = Param(expr=str(raw[f"{key}.$"]))
        elif raw.get(key) is not None:
            value = raw[key]
            if not isinstance(value, str):
                raise FdlError(f"{where}.{key} must be a string")
            out[key] = Param(value=value)
    return out


def _reader(value: Any, where: str) -> ReaderSpec | None:
    if value is None:
        return None
    raw = f.need_mapping(value, where)
    f.no_unknown(raw, {"SourceType", "SourceParameters", "ReaderConfig"}, where)
    source = raw.get("SourceType")
    if source not in SOURCE_TYPES:
        raise FdlError(f"{where}.SourceType must be one of {', '.join(SOURCE_TYPES)}, not {source!r}")
    at = f"{where}.SourceParameters"
    params = _params(f.need_mapping(raw.get("SourceParameters"), at), ("Bucket", "ObjectName", "Prefix"), at)
    if "Bucket" not in params:
        raise FdlError(f"{at}.Bucket is required")
    if source == "OSS_OBJECTS":
        if "ObjectName" in params:
            raise FdlError(f"{at}.ObjectName is not used by OSS_OBJECTS (give Prefix)")
    elif "ObjectName" not in params:
        raise FdlError(f"{at}.ObjectName is required for {source}")
    elif "Prefix" in params:
        raise FdlError(f"{at}.Prefix is only for OSS_OBJECTS")
    headers: tuple[str, ...] | None = None
    max_items = None
    if raw.get("ReaderConfig") is not None:
        at = f"{where}.ReaderConfig"
        config = f.need_mapping(raw["ReaderConfig"], at)
        f.no_unknown(config, {"CSVHeaders", "MaxItems", "MaxItems.$"}, at)
        if config.get("CSVHeaders") is not None:
            if source != "OSS_CSV":
                raise FdlError(f"{at}.CSVHeaders is only for OSS_CSV")
            got = config["CSVHeaders"]
            if not isinstance(got, list) or not got or not all(isinstance(h, str) and h for h in got):
                raise FdlError(f"{at}.CSVHeaders must be a non-empty list of column names")
            if len(set(got)) != len(got):
                raise FdlError(f"{at}.CSVHeaders has a repeated column name")
            headers = tuple(got)
        max_items = _max_items(config, at)
    return ReaderSpec(source_type=str(source), params=params, csv_headers=headers, max_items=max_items)


def _max_items(raw: dict[str, Any], where: str) -> Param | None:
    if raw.get("MaxItems") is not None and raw.get("MaxItems.$") is not None:
        raise FdlError(f"{where}: give MaxItems or MaxItems.$, not both")
    if raw.get("MaxItems.$") is not None:
        f.expression(raw["MaxItems.$"], f"{where}.MaxItems.$")
        return Param(expr=str(raw["MaxItems.$"]))
    value = f.opt_number(raw, "MaxItems", where, minimum=1, maximum=100_000_000, integer=True)
    return None if value is None else Param(value=int(value))


def _batcher(value: Any, where: str) -> BatcherSpec | None:
    if value is None:
        return None
    raw = f.need_mapping(value, where)
    f.no_unknown(raw, {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}, where)
    items = f.opt_number(raw, "MaxItemsPerBatch", where, minimum=1, maximum=100_000_000, integer=True)
    size = f.opt_number(raw, "MaxInputBytesPerBatch", where, minimum=1, maximum=MAX_BATCH_BYTES, integer=True)
    if items is None and size is None:
        raise FdlError(f"{where} needs MaxItemsPerBatch or MaxInputBytesPerBatch")
    batch_input = f.constructor(raw.get("BatchInput"), f"{where}.BatchInput")
    return BatcherSpec(None if items is None else int(items), None if size is None else int(size), batch_input)


def _writer(value: Any, where: str) -> WriterSpec | None:
    if value is None:
        return None
    raw = f.need_mapping(value, where)
    f.no_unknown(raw, {"Parameters"}, where)
    at = f"{where}.Parameters"
    params = _params(f.need_mapping(raw.get("Parameters"), at), ("Bucket", "Prefix"), at)
    if "Bucket" not in params:
        raise FdlError(f"{at}.Bucket is required")
    return WriterSpec(params=params)
