"""View models of the console's pages, built in Python from records and history (no I/O: unit-testable)."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup

from common import keys
from common.fdl import FdlError, parse_definition
from common.graph import build_graph
from common.interpreter import TERMINAL
from common.overlay import StateStatus, read_history, timeline
from common.records import dumps
from common.timefmt import rfc3339_ms
from common.tokens import make_token
from console.charts import timeline_svg

PREFIX = "/console"  # where the console's routes start, mounted with the front door or on its own port
HISTORY_PAGE = 100  # history events per page


def link(*parts: str, **query: str) -> str:
    path = PREFIX + "/" + "/".join(quote(p, safe="") for p in parts)
    q = {k: v for k, v in query.items() if v}
    return path + ("?" + urlencode(q) if q else "")


def show_time(ms: str | int | None) -> str:
    if ms in (None, ""):
        return ""
    return rfc3339_ms(int(str(ms))).replace("T", " ").replace("Z", " UTC")


def script_json(value: Any) -> Markup:
    """JSON safe to embed in a <script type="application/json"> element (no `</script>` can close it)."""
    text = json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def pretty_json(raw: str | None) -> str:
    if not raw:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


def _pretty_value(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def graph_of(definition: str) -> tuple[Any, Any]:
    try:
        flow_def = parse_definition(definition)
    except FdlError:
        return None, None
    return flow_def, build_graph(flow_def)


STATUS_LABELS = {
    StateStatus.NOT_REACHED: "not reached",
    StateStatus.RUNNING: "running",
    StateStatus.SUCCEEDED: "succeeded",
    StateStatus.FAILED: "failed",
    StateStatus.CAUGHT: "failed, caught",
    StateStatus.RETRIED: "retried",
    StateStatus.WAITING: "waiting for a callback",
    StateStatus.STOPPED: "stopped",
}


def execution_model(
    flow: dict[str, str], fields: dict[str, str], definition: str, events: list[Any], *, token_secret: str,
    may_report: bool, type_filter: str, page: int, now: int,
) -> dict[str, Any]:
    """Everything the execution page shows, from the record and its history (no I/O: unit-testable)."""
    flow_def, graph = graph_of(definition)
    overlay = read_history(flow_def, graph, events) if flow_def is not None else None
    states: list[dict[str, Any]] = []
    waiting: list[dict[str, str]] = []
    colours: dict[str, str] = {}
    if overlay is not None and graph is not None:
        for node in graph.nodes:
            colours[node.id] = overlay.status_of(node.id).value if node.kind not in ("start", "end", "join") else ""
        for node_id, view in overlay.states.items():
            last = view.last
            attempts = [
                {"number": a.number, "outcome": a.outcome or "running", "error": a.error, "cause": a.cause,
                 "took": "" if a.ended is None else f"{a.ended - a.scheduled} ms"}
                for a in last.attempts
            ]  # fmt: skip
            states.append(
                {
                    "node": node_id,
                    "name": last.step,
                    "status": view.status.value,
                    "status_label": STATUS_LABELS[view.status],
                    "visits": len(view.visits),
                    "input": _pretty_value(last.input),
                    "output": _pretty_value(last.output),
                    "error": last.error or next((a.error for a in reversed(last.attempts) if a.error), ""),
                    "cause": last.cause or next((a.cause for a in reversed(last.attempts) if a.cause), ""),
                    "attempts": attempts,
                    "events": ", ".join(str(e) for e in last.events[:50]),
                }
            )
            task = view.waiting_task
            if task is not None and may_report and fields.get("status") not in TERMINAL:
                waiting.append({"state": last.step, "token": make_token(token_secret, flow["Id"], fields["name"], task.task_id)})
    types = sorted({e.type for e in events})
    shown = [e for e in events if not type_filter or e.type == type_filter]
    pages = max(1, (len(shown) + HISTORY_PAGE - 1) // HISTORY_PAGE)
    page = min(max(1, page), pages)
    history = [
        {"id": e.id, "sched": e.sched, "type": e.type, "step": e.step, "time": show_time(e.time), "detail": dumps(e.detail)[:300]}
        for e in shown[(page - 1) * HISTORY_PAGE : page * HISTORY_PAGE]
    ]
    bars = timeline(overlay) if overlay is not None else []
    failing = next((s for s in states if s["status"] == StateStatus.FAILED.value), None)
    return {
        "children": children(flow["Id"], fields["name"], overlay),
        "graph_json": script_json(graph.to_json() if graph else None),
        "overlay_json": script_json(colours),
        "states": states,
        "waiting": waiting,
        "history": history,
        "history_types": types,
        "history_page": page,
        "history_pages": pages,
        "history_total": len(shown),
        "timeline": Markup(timeline_svg(bars, now)),
        "failing": failing,
    }


CHILD_FLOW = re.compile(r"^acs:fnf:[^:]*:[^:]*:flow/([^/]+)$")


def children(flow_id: str, execution: str, overlay: Any) -> list[dict[str, str]]:
    """Child executions this one started (tasks on `acs:fnf:::flow/NAME`), named as worker/children.py names them."""
    out = []
    for visit in overlay.visits if overlay is not None else []:
        for attempt in visit.attempts:
            found = CHILD_FLOW.match(attempt.resource)
            if not found:
                continue
            params = attempt.parameters if isinstance(attempt.parameters, dict) else {}
            given = next((params[k] for k in ("ExecutionName", "executionName") if params.get(k)), None)
            tag = keys.execution_tag(flow_id, execution)
            name = str(given or uuid.uuid5(uuid.NAMESPACE_URL, f"openfnf:{tag}#{attempt.task_id}"))
            out.append({"state": visit.step, "flow": found.group(1), "name": name, "url": link("flows", found.group(1), "executions", name)})
    return out[:100]


def map_runs(flow: str, execution: str, events: list[Any]) -> list[dict[str, str]]:
    """The MapRuns a parent's distributed Map states started (their MapRunStarted events), in order, each once."""
    out: dict[str, dict[str, str]] = {}
    for e in events:
        if e.type != "MapRunStarted":
            continue
        output = e.detail.get("output") if isinstance(e.detail, dict) else None
        name = str(output.get("MapRunName") or "") if isinstance(output, dict) else ""
        if name and name not in out:
            out[name] = {"state": e.step, "name": name, "url": link("flows", flow, "executions", execution, "mapruns", name)}
    return list(out.values())[:100]
