"""The console's pages and forms: sign in/out, flows, a flow, an execution, the overview, and the acts."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web
from markupsafe import Markup

from common import browse, control, keys, mapruns
from common.credentials import AccessKey
from common.errors import FnfError
from common.interpreter import TERMINAL, Status
from common.interpreter.redrive import REDRIVABLE
from common.reports import failed_event, succeeded_event
from common.schedules import ScheduleStore, schedule_view
from common.store import ExecutionFilter, Store
from common.throttle_rules import decode_rules
from common.timefmt import parse_rfc3339
from common.tokens import InvalidToken, parse_token
from console import highlight
from console.access import BY_NAME, SECTIONS, may
from console.app import (
    KEY,
    KEYS,
    PUBLISH,
    SESSION,
    SESSIONS,
    SETTINGS,
    STORE,
    Refused,
    cookie_args,
    now_ms,
    render,
)
from console.charts import Throttled, minutes_svg
from console.sessions import COOKIE, COOKIE_PATH, PRE_COOKIE, new_token, same_token, secret_matches
from console.views import PREFIX, execution_model, graph_of, link, map_runs, pretty_json, script_json, show_time

PAGE = 25  # rows per list page
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
WRONG_KEY = "Wrong access key id or secret."


def setup(app: web.Application) -> None:
    """Register the routes (names match console/access.py ROUTES)."""
    r = app.router
    r.add_get("/", index, name="index")
    r.add_get("/signin", signin, name="signin")
    r.add_post("/signin", signin_post, name="signin_post")
    r.add_post("/signout", signout, name="signout")
    r.add_get("/flows", flows, name="flows")
    r.add_get("/overview", overview, name="overview")
    r.add_get("/flows/{flow}", flow_page, name="flow")
    r.add_post("/flows/{flow}/start", start, name="start")
    r.add_get("/flows/{flow}/executions/{execution}", execution_page, name="execution")
    r.add_get("/flows/{flow}/executions/{execution}/live", live, name="live")
    r.add_get("/flows/{flow}/executions/{execution}/mapruns/{maprun}", maprun_page, name="maprun")
    r.add_post("/flows/{flow}/executions/{execution}/stop", stop, name="stop")
    r.add_post("/flows/{flow}/executions/{execution}/redrive", redrive, name="redrive")
    r.add_post("/flows/{flow}/executions/{execution}/restart", restart, name="restart")
    r.add_post("/flows/{flow}/executions/{execution}/report", report, name="report")


# ------------------------------------------------------------------ helpers


def _key(request: web.Request) -> AccessKey:
    key: AccessKey = request[KEY]
    return key


def _may(request: web.Request, action: str, scope: str, flow: str = "", execution: str = "") -> bool:
    return may(_key(request), action, request.app[SETTINGS].region, scope, flow, execution)


def _require(request: web.Request, route: str, flow: str = "", execution: str = "", action: str | None = None) -> None:
    spec = BY_NAME[route]
    act = action or spec.action
    if not _may(request, act, spec.scope, flow, execution):
        raise Refused(403, f"Your access key may not do this: its policy does not allow fnf:{act} here.")


async def _flow(request: web.Request, name: str) -> dict[str, str]:
    flow = await request.app[STORE].get_flow(_key(request).account, name)
    if flow is None:  # another account's flow looks exactly like a missing one
        raise Refused(404, f"There is no flow named {name}.")
    return flow


async def _execution(request: web.Request, flow: dict[str, str], name: str) -> dict[str, str]:
    fields = await request.app[STORE].read_execution(flow["Id"], name)
    if fields is None:
        raise Refused(404, f"Flow {flow['Name']} has no execution named {name}.")
    return fields


def _fail(exc: FnfError) -> Refused:
    status = {404: 404, 403: 403}.get(exc.http_status, 409 if exc.http_status == 400 and "Already" in exc.code else 400)
    return Refused(status, f"{exc.code}: {exc.message}")


# ------------------------------------------------------------------ sign in / out


async def index(request: web.Request) -> web.StreamResponse:
    """/console/: to the flows (the middleware sends signed-out visitors to sign in)."""
    raise web.HTTPSeeOther(link("flows"))


def _signin_page(request: web.Request, status: int = 200, message: str = "", key_id: str = "") -> web.Response:
    token = request.cookies.get(PRE_COOKIE) or new_token()
    nxt = request.query.get("next", "")
    response = render(request, "signin.html", status=status, title="Sign in", message=message, signin_csrf=token, key_id=key_id, next=nxt)
    response.set_cookie(PRE_COOKIE, token, max_age=3600, **cookie_args(request.app[SETTINGS]))
    return response


async def signin(request: web.Request) -> web.StreamResponse:
    """The sign-in form."""
    return _signin_page(request)


async def signin_post(request: web.Request) -> web.StreamResponse:
    """Check the key id and secret; on success a new session and its cookie."""
    form = await request.post()
    given = form.get("csrf")
    if not same_token(request.cookies.get(PRE_COOKIE, ""), given if isinstance(given, str) else None):
        return render(request, "error.html", status=403, title="Refused", message="The sign-in form expired (CSRF token missing or wrong): reload it.")
    client = request.remote or "unknown"
    if not await request.app[SESSIONS].attempt_allowed(client, now_ms()):
        return _signin_page(request, 429, "Too many sign-in attempts from your address: wait a minute and try again.")
    key_id = str(form.get("access_key_id", "")).strip()
    secret = str(form.get("access_key_secret", ""))
    key = request.app[KEYS].get(key_id) if key_id else None
    if not secret_matches(key, secret):
        return _signin_page(request, 401, WRONG_KEY, key_id)
    session = await request.app[SESSIONS].create(key_id, now_ms())
    nxt = str(request.query.get("next", ""))
    target = nxt if nxt.startswith(PREFIX + "/") and "//" not in nxt and "\\" not in nxt else link("flows")
    response = web.HTTPSeeOther(target)
    settings = request.app[SETTINGS]
    response.set_cookie(COOKIE, session.id, max_age=settings.console_session_seconds, **cookie_args(settings))
    response.del_cookie(PRE_COOKIE, path=COOKIE_PATH)
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    await request.app[SESSIONS].end(request[SESSION].id)
    response = web.HTTPSeeOther(link("signin"))
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    raise response


# ------------------------------------------------------------------ flows


async def flows(request: web.Request) -> web.StreamResponse:
    """The account's flows: name prefix search, paging, counts of the last 24 hours."""
    _require(request, "flows")
    store: Store = request.app[STORE]
    prefix = request.query.get("prefix", "")[:128]
    page = await browse.flows_by_prefix(store, _key(request).account, prefix, request.query.get("from", "")[:128], PAGE)
    counts = await browse.recent_counts(store, [f["Id"] for f in page.rows], now_ms() - 24 * 3600 * 1000)
    rows = []
    for f in page.rows:
        c = counts.get(f["Id"])
        rows.append(
            {
                "name": f["Name"],
                "url": link("flows", f["Name"]),
                "type": f.get("Type", "FDL"),
                "mode": f.get("ExecutionMode") or "Standard",
                "modified": show_time(f.get("LastModifiedTime")),
                "started": c.started if c else 0,
                "sampled": c.sampled if c else 0,
                "by_status": c.by_status if c else {},
            }
        )
    nxt = link("flows", prefix=prefix, **{"from": page.next}) if page.next else ""
    return render(request, "flows.html", title="Flows", rows=rows, prefix=prefix, next_url=nxt)


async def flow_page(request: web.Request) -> web.StreamResponse:
    """One flow: definition, graph, versions and aliases, schedules, executions, the start form."""
    name = request.match_info["flow"]
    flow = await _flow(request, name)
    _require(request, "flow", name)
    store: Store = request.app[STORE]
    account = _key(request).account
    _, graph = graph_of(flow.get("Definition", ""))
    q = request.query
    status = q.get("status", "")
    status = status if status in {s.value for s in Status} else ""
    execs: list[dict[str, Any]] = []
    nxt = ""
    filters = {"status": status, "prefix": q.get("prefix", "")[:128], "begin": q.get("begin", ""), "end": q.get("end", "")}
    bad_filter = ""
    if _may(request, SECTIONS["executions"], "flow", name):
        try:
            begin = parse_rfc3339(filters["begin"]) if filters["begin"] else None
            end = parse_rfc3339(filters["end"]) if filters["end"] else None
        except ValueError:
            begin = end = None
            bad_filter = "Times look like 2024-01-31T12:00:00Z."
        match = ExecutionFilter(status=status, prefix=filters["prefix"], begin=begin, end=end)
        page = await browse.executions_newest_first(store, flow["Id"], q.get("cursor", "")[:128], PAGE, match)
        execs = [_execution_row(name, row) for row in page.rows]
        nxt = link("flows", name, cursor=page.next, **filters) if page.next else ""
    versions = await store.versions.all(account, name) if _may(request, SECTIONS["versions"], "flow", name) else None
    for version in versions or []:
        version["Created"] = show_time(version.get("CreatedTime"))
    aliases = await store.versions.aliases(account, name) if versions is not None else None
    schedules = None
    if _may(request, SECTIONS["schedules"], "flow", name):
        rows, _ = await ScheduleStore(store.redis, store.scripts, store.settings.partitions).list(account, flow["Id"], None, 50)
        schedules = [schedule_view(r) for r in rows]
    return render(
        request,
        "flow.html",
        title=name,
        flow=flow,
        modified=show_time(flow.get("LastModifiedTime")),
        created=show_time(flow.get("CreatedTime")),
        yaml=Markup(highlight.yaml_html(flow.get("Definition", ""))),
        graph_json=script_json(graph.to_json() if graph else None),
        overlay_json=script_json(None),
        executions=execs,
        executions_allowed=_may(request, SECTIONS["executions"], "flow", name),
        next_url=nxt,
        filters=filters,
        bad_filter=bad_filter,
        statuses=[s.value for s in Status if s is not Status.STARTING],
        versions=versions,
        aliases=aliases,
        schedules=schedules,
        can_start=_may(request, "StartExecution", "flow", name),
        start_url=link("flows", name, "start"),
    )


def _execution_row(flow: str, row: dict[str, str]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "url": link("flows", flow, "executions", row["name"]),
        "status": row["status"],
        "started": show_time(row.get("started")),
        "stopped": show_time(row.get("stopped")),
        "qualifier": row.get("qual", ""),
    }


async def start(request: web.Request) -> web.StreamResponse:
    """Start an execution from the flow page's form (Input validated as a JSON object)."""
    name = request.match_info["flow"]
    flow = await _flow(request, name)
    _require(request, "start", name)
    form = await request.post()
    raw_input = str(form.get("input", "")).strip()
    execution = str(form.get("name", "")).strip()
    qualifier = str(form.get("qualifier", "")).strip()
    if execution and not NAME_RE.match(execution):
        raise Refused(400, "The execution name must start with a letter or _ and hold at most 128 letters, digits, _ or -.")
    return await _start(request, flow, raw_input, execution, qualifier)


async def _start(request: web.Request, flow: dict[str, str], raw_input: str, execution: str, qualifier: str) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    store: Store = request.app[STORE]
    try:
        input_obj = json.loads(raw_input) if raw_input else {}
    except ValueError as exc:
        raise Refused(400, f"The input is not valid JSON: {exc}.") from None
    if not isinstance(input_obj, dict):
        raise Refused(400, "The input must be a JSON object.")
    if len(raw_input.encode()) > settings.max_state_bytes:
        raise Refused(400, f"The input is larger than {settings.max_state_bytes} bytes.")
    if flow.get("ExecutionMode") == "Express":
        raise Refused(400, "This flow runs in Express mode: start it with StartSyncExecution.")
    try:
        runs = await control.resolve_qualifier(store, _key(request).account, flow, qualifier)
        view = await control.start(
            store, request.app[PUBLISH], settings, account=_key(request).account, flow=flow, name=execution or str(uuid.uuid4()),
            raw_input=raw_input, input_obj=input_obj, runs=runs, qualifier=qualifier, callback="", now=now_ms(),
        )  # fmt: skip
    except FnfError as exc:
        raise _fail(exc) from None
    raise web.HTTPSeeOther(link("flows", flow["Name"], "executions", view["Name"]))


# ------------------------------------------------------------------ executions


async def execution_page(request: web.Request) -> web.StreamResponse:
    """One execution: status, times, input/output, coloured graph, state details, history, timeline, acts."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    _require(request, "execution", flow_name, name)
    store: Store = request.app[STORE]
    settings = request.app[SETTINGS]
    fields = await _execution(request, flow, name)
    definition = await store.definition(fields["defid"])
    history_allowed = _may(request, SECTIONS["history"], "execution", flow_name, name)
    runs_allowed = _may(request, "DescribeMapRun", "execution", flow_name, name)
    all_events = await store.history(flow["Id"], name) if history_allowed or runs_allowed else []
    events = all_events if history_allowed else []
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    type_filter = request.query.get("type", "")[:64]
    model = execution_model(
        flow, fields, definition, events, token_secret=settings.token_secret,
        may_report=_may(request, "ReportTaskSucceeded", "task"), type_filter=type_filter, page=page, now=now_ms(),
    )  # fmt: skip
    running = fields["status"] not in TERMINAL
    chunks = await store.redis.llen(keys.history(keys.execution_tag(flow["Id"], name)))  # what `live` compares against
    parent, run = await _parent_link(store, _key(request).account, flow, name, settings.token_secret)
    base = ("flows", flow_name, "executions", name)
    return render(
        request,
        "execution.html",
        title=f"{name} · {flow_name}",
        flow=flow,
        ex=fields,
        running=running,
        started=show_time(fields.get("started")),
        stopped=show_time(fields.get("stopped")),
        input=pretty_json(fields.get("input")),
        output=pretty_json(fields.get("output")),
        history_allowed=history_allowed,
        type_filter=type_filter,
        can_stop=_may(request, "StopExecution", "execution", flow_name, name),
        redrivable=fields["status"] in REDRIVABLE,
        can_redrive=_may(request, "RedriveExecution", "execution", flow_name, name),
        redrive_url=link(*base, "redrive"),
        can_start=_may(request, "StartExecution", "flow", flow_name),
        flow_url=link("flows", flow_name),
        stop_url=link(*base, "stop"),
        restart_url=link(*base, "restart"),
        report_url=link(*base, "report"),
        live_url=link(*base, "live"),
        page_url=link(*base),
        parent=parent,
        maprun=run,
        mapruns=map_runs(flow_name, name, all_events) if runs_allowed else [],
        hseq=str(chunks),
        **model,
    )


async def _parent_link(
    store: Store, account: str, flow: dict[str, str], name: str, secret: str
) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """(the execution that started this one, the MapRun it is a child of): from its callback, if any."""
    raw = await store.redis.hget(keys.execution(keys.execution_tag(flow["Id"], name)), "cb")
    token = raw.decode() if isinstance(raw, bytes) else (raw or "")
    if not token:
        return None, None
    of_run = mapruns.parse_callback(token)
    if of_run is not None:  # a distributed Map's child: its run (same flow) names the parent
        fid, run_name = keys.split_tag(of_run[0])
        view = await mapruns.read_view(store.redis, fid, run_name) if fid == flow["Id"] else None
        if view is None:
            return None, None
        base = ("flows", flow["Name"], "executions", view["pname"])
        parent = {"flow": flow["Name"], "name": view["pname"], "url": link(*base)}
        return parent, {"name": run_name, "url": link(*base, "mapruns", run_name)}
    try:
        ref = parse_token(secret, token)
    except InvalidToken:
        return None, None
    parent_flow = await browse.flow_name_by_id(store, account, ref.flow_id)
    if parent_flow is None:
        return None, None
    return {"flow": parent_flow, "name": ref.execution, "url": link("flows", parent_flow, "executions", ref.execution)}, None


async def maprun_page(request: web.Request) -> web.StreamResponse:
    """One MapRun of a distributed Map: status, times, limits, item counts and its child executions (paged)."""
    flow_name, name, run_name = request.match_info["flow"], request.match_info["execution"], request.match_info["maprun"]
    flow = await _flow(request, flow_name)
    _require(request, "maprun", flow_name, name)
    await _execution(request, flow, name)
    store: Store = request.app[STORE]
    fields = await mapruns.read_view(store.redis, flow["Id"], run_name)
    if fields is None or fields["pname"] != name:
        raise Refused(404, f"Execution {name} has no MapRun named {run_name}.")
    view = mapruns.describe_view(fields)
    children: list[dict[str, Any]] = []
    nxt = ""
    children_allowed = _may(request, SECTIONS["executions"], "flow", flow_name)
    if children_allowed:
        rows, after = await mapruns.children_page(store.redis, flow["Id"], run_name, request.query.get("from", "")[:200] or None, PAGE)
        children = [_execution_row(flow_name, row) for row in rows]
        nxt = link("flows", flow_name, "executions", name, "mapruns", run_name, **{"from": after}) if after else ""
    return render(
        request,
        "maprun.html",
        title=f"MapRun {run_name} · {name}",
        flow=flow,
        run=view,
        started=show_time(fields.get("started")),
        stopped=show_time(fields.get("stopped")),
        tolerated_count=fields.get("tcount") or "—",
        tolerated_pct=fields.get("tpct") or "—",
        flow_url=link("flows", flow_name),
        parent_url=link("flows", flow_name, "executions", name),
        children=children,
        children_allowed=children_allowed,
        next_url=nxt,
    )


async def live(request: web.Request) -> web.StreamResponse:
    """What the page polls while an execution runs: its status and how many history events it has."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    _require(request, "live", flow_name, name)
    tag = keys.execution_tag(flow["Id"], name)
    store: Store = request.app[STORE]
    pipe = store.redis.pipeline(transaction=False)
    pipe.hget(keys.execution(tag), "status")
    pipe.llen(keys.history(tag))
    status, chunks = await pipe.execute()
    if status is None:
        raise Refused(404, "No such execution.")
    body = {"status": status.decode() if isinstance(status, bytes) else str(status), "chunks": int(chunks)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def stop(request: web.Request) -> web.StreamResponse:
    """Stop a running execution with an Error and a Cause."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    _require(request, "stop", flow_name, name)
    fields = await _execution(request, flow, name)
    form = await request.post()
    error, cause = str(form.get("error", ""))[:128], str(form.get("cause", ""))[:4096]
    try:
        await control.stop(request.app[STORE], request.app[PUBLISH], flow, fields, error, cause, now_ms())
    except FnfError as exc:
        raise _fail(exc) from None
    raise web.HTTPSeeOther(link("flows", flow_name, "executions", name))


async def redrive(request: web.Request) -> web.StreamResponse:
    """Redrive a Failed, Stopped or TimedOut execution from where it failed (RedriveExecution, issue 18)."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    _require(request, "redrive", flow_name, name)
    settings = request.app[SETTINGS]
    try:
        await control.redrive(
            request.app[STORE], request.app[PUBLISH], settings, account=_key(request).account, flow=flow, name=name, now=now_ms()
        )
    except FnfError as exc:
        raise _fail(exc) from None
    raise web.HTTPSeeOther(link("flows", flow_name, "executions", name))


async def restart(request: web.Request) -> web.StreamResponse:
    """Start a new execution of the flow with this one's input."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    _require(request, "restart", flow_name)
    fields = await _execution(request, flow, name)
    return await _start(request, flow, fields.get("input", ""), "", fields.get("qual", ""))


async def report(request: web.Request) -> web.StreamResponse:
    """Report a task waiting for a callback as succeeded (with an output) or failed (with an error and cause)."""
    flow_name, name = request.match_info["flow"], request.match_info["execution"]
    flow = await _flow(request, flow_name)
    form = await request.post()
    succeeded = form.get("outcome") == "succeeded"
    _require(request, "report", action="ReportTaskSucceeded" if succeeded else "ReportTaskFailed")
    settings = request.app[SETTINGS]
    token = str(form.get("token", "")).strip()
    try:
        ref = parse_token(settings.token_secret, token)
    except InvalidToken:
        raise Refused(400, "The task token is not one this service issued.") from None
    if ref.flow_id != flow["Id"] or ref.execution != name:
        raise Refused(400, "The task token belongs to another execution.")
    if succeeded:
        raw = str(form.get("output", "")).strip() or "{}"
        try:
            output: Any = json.loads(raw)
        except ValueError as exc:
            raise Refused(400, f"The output is not valid JSON: {exc}.") from None
        event = succeeded_event(ref.task_id, output)
    else:
        error = str(form.get("error", "")).strip()
        if not 1 <= len(error) <= 128:
            raise Refused(400, "A failure report needs an Error of 1 to 128 characters.")
        event = failed_event(ref.task_id, error, str(form.get("cause", ""))[:4096])
    try:
        await control.report(
            request.app[STORE], request.app[PUBLISH], settings, account=_key(request).account, token=token, ref=ref, event=event, now=now_ms()
        )
    except FnfError as exc:
        raise _fail(exc) from None
    raise web.HTTPSeeOther(link("flows", flow_name, "executions", name))


# ------------------------------------------------------------------ overview


async def overview(request: web.Request) -> web.StreamResponse:
    """Executions per minute over the last hour, throttling rules and 429s, worker/timers liveness."""
    _require(request, "overview")
    store: Store = request.app[STORE]
    account = _key(request).account
    page = await browse.flows_by_prefix(store, account, "", "", 100)
    minutes = await browse.per_minute(store, [f["Id"] for f in page.rows], now_ms())
    rules = [r for r in decode_rules(await store.redis.hgetall(keys.THROTTLE_RULES)) if r.target in ("*", account) or r.scope.value != "account"]
    totals = {"started": sum(m.started for m in minutes), "succeeded": sum(m.succeeded for m in minutes), "failed": sum(m.failed for m in minutes)}
    from console.liveness import liveness

    now = now_ms()
    counts = await browse.throttled_per_minute(store.redis, now)
    first = (now // browse.MINUTE_MS - len(counts) + 1) * browse.MINUTE_MS
    throttled = [Throttled(first + i * browse.MINUTE_MS, n) for i, n in enumerate(counts)]

    return render(
        request,
        "overview.html",
        title="Overview",
        chart=Markup(minutes_svg(minutes)),
        totals=totals,
        flows_counted=len(page.rows),
        rules=rules,
        throttled_chart=Markup(minutes_svg(throttled, ("throttled",), "429 answers per minute")),
        throttled_total=sum(counts),
        alive=await liveness(store.redis, now_ms()),
    )
