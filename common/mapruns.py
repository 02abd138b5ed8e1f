"""MapRuns (distributed Map, issue 16): names, the child callback, the record's counts as DescribeMapRun shows them.

A MapRun is an actor like an execution (worker/mapruns.py drives it). Its name is derived from the
parent execution and the Map's activity id, so a redelivered start finds the same run and the
engine can abort the run of an activity it cancels without a lookup. Its children are named
`m<MapRunName>-<index>`; each carries `maprun:<run tag>#<index>` as its callback, and its end is
counted by maprun_child_end.lua.
"""
from __future__ import annotations

import uuid
from typing import Any

from common import keys
from common.express import ExpressLimitError, check_express
from common.fdl import FlowDef
from common.records import EXECUTION_VIEW_FIELDS, as_str, view_fields
from common.taskmsg import redis_task_message
from common.timefmt import rfc3339_ms

MAPRUN_TASK = "openfnf.maprun"  # args: [MapRun tag]; runs on the activities queue
CALLBACK_PREFIX = "maprun:"
TERMINAL = frozenset({"Succeeded", "Failed", "Aborted"})

# Task errors of a distributed Map (docs/compatibility.md), catchable by the Map's Catch.
ITEM_READER_FAILED = "FnF.ItemReaderFailed"
RESULT_WRITER_FAILED = "FnF.ResultWriterFailed"
ITEMS_EXCEEDED = "FnF.ItemsExceeded"
TOLERANCE_EXCEEDED = "FnF.ExceedToleratedFailureThreshold"
RESULT_TOO_LARGE = "FnF.StateSizeExceeded"
ABORTED = "FnF.MapRunAborted"
LIMIT_EXCEEDED = "FnF.MapRunLimitExceeded"


def run_name(parent_tag: str, activity_id: str) -> str:
    """The MapRun name of one attempt of a Map state: 32 lowercase hex characters, as the cloud's."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"openfnf:maprun:{parent_tag}#{activity_id}").hex


def run_tag(flow_id: str, name: str) -> str:
    """The routing tag of a MapRun (its keys' hash tag): built as an execution's."""
    return keys.execution_tag(flow_id, name)


def child_name(name: str, index: int) -> str:
    """The execution name of child `index` (a valid execution name: it starts with a letter)."""
    return f"m{name}-{index}"


def child_callback(tag: str, index: int) -> str:
    """What a child carries in its record's `cb` field instead of a task token."""
    return f"{CALLBACK_PREFIX}{tag}#{index}"


def parse_callback(value: str) -> tuple[str, int] | None:
    """(run tag, child index) of a child's callback; None for anything else (a task token)."""
    if not value.startswith(CALLBACK_PREFIX):
        return None
    tag, _, index = value[len(CALLBACK_PREFIX) :].rpartition("#")
    return (tag, int(index)) if tag and index.isdigit() else None


def drive_message(tag: str, queue: str) -> str:
    """The Celery message that drives a MapRun."""
    return redis_task_message(MAPRUN_TASK, [tag], queue)


def _int(fields: dict[str, str], key: str) -> int:
    try:
        return int(fields.get(key) or 0)
    except ValueError:
        return 0


def counts(fields: dict[str, str]) -> dict[str, int]:
    """ItemCounts of a record: they add up to Total (Pending is what is neither running nor ended)."""
    total = _int(fields, "total")
    running, ok, failed, aborted = (_int(fields, k) for k in ("running", "succeeded", "failed", "aborted"))
    return {
        "Total": total, "Pending": max(0, total - running - ok - failed - aborted), "Running": running,
        "Succeed": ok, "Failed": failed, "Aborted": aborted,
    }  # fmt: skip


def describe_view(fields: dict[str, str]) -> dict[str, Any]:
    """DescribeMapRun's answer (without RequestId)."""
    view: dict[str, Any] = {
        "ExecutionName": fields.get("pname", ""),
        "MapRunName": fields.get("name", ""),
        "Status": fields.get("status", ""),
        "StartedTime": rfc3339_ms(_int(fields, "started")),
        "Concurrency": _int(fields, "conc"),
        "ToleratedFailedCount": _int(fields, "tcount"),
        "ToleratedFailedPercentage": float(fields.get("tpct") or 0),
        "ItemCounts": counts(fields),
    }
    if fields.get("stopped"):
        view["StoppedTime"] = rfc3339_ms(_int(fields, "stopped"))
    return view


VIEW_FIELDS = ("pname", "name", "status", "started", "stopped", "conc", "tcount", "tpct", "total", "running", "succeeded", "failed", "aborted")


async def read_view(redis: Any, flow_id: str, name: str) -> dict[str, str] | None:
    """The view fields of MapRun `name` of the flow, read in one command (its counts add up); None if there is none."""
    raw = await redis.hmget(keys.maprun(run_tag(flow_id, name)), *VIEW_FIELDS)
    fields = {k: as_str(v) for k, v in zip(VIEW_FIELDS, raw, strict=True)}
    return fields if fields["name"] else None


async def children_page(redis: Any, flow_id: str, name: str, start: str | None, limit: int) -> tuple[list[dict[str, str]], str | None]:
    """The run's children (execution view fields) in index order from child `start`, and the child to go on from."""
    index = keys.maprun_children(run_tag(flow_id, name))
    first = 0
    if start:
        rank = await redis.zrank(index, start)
        if rank is None:
            return [], None
        first = int(rank)
    names = [as_str(n) for n in await redis.zrange(index, first, first + limit)]
    pipe = redis.pipeline(transaction=False)
    for child in names[:limit]:
        pipe.hmget(keys.execution(keys.execution_tag(flow_id, child)), *EXECUTION_VIEW_FIELDS)
    rows = []
    for child, raw in zip(names[:limit], await pipe.execute() if names[:limit] else [], strict=True):
        if raw[0] is not None:
            rows.append(view_fields(child, raw))
    return rows, (names[limit] if len(names) > limit else None)


def tolerance_exceeded(fields: dict[str, str]) -> bool:
    """Whether the failed items pass a threshold, strictly (failed > count, failed% > percentage).

    A threshold the Map (or UpdateMapRun) never set (stored as "") does not apply; with neither set,
    the first failure fails the run; with both set, passing either fails it.
    """
    failed = _int(fields, "failed")
    if failed == 0:
        return False
    count, pct = fields.get("tcount", ""), fields.get("tpct", "")
    if count == "" and pct == "":
        return True
    if count != "" and failed > _int(fields, "tcount"):
        return True
    total = _int(fields, "total")
    return pct != "" and total > 0 and failed * 100.0 / total > float(pct)


def check_express_children(flow: FlowDef, max_seconds: int) -> None:
    """ExpressLimitError naming the distributed Map whose Express children would break an Express limit
    (callback task modes, long waits): checked at CreateFlow / UpdateFlow."""
    for scope in flow.scopes.values():
        for state in scope.states.values():
            if state.type == "dmap" and state.dmap.mode == "Express":
                try:
                    check_express(state.dmap.child_definition(None), max_seconds)
                except ExpressLimitError as exc:
                    raise ExpressLimitError(f"{state.path} ({state.name}).Processor runs as Express children: {exc}") from None
