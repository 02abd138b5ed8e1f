"""`openfnf loadtest`: an open-loop load generator that signs requests like the SDK.

Requests leave on a fixed schedule (`rate` per second for `duration`), whatever the answers:
a slow or throttling server does not slow the offered load down (no closed loop). At most
`concurrency` requests are in flight; a request that has to wait for a slot leaves late, and
the lag is reported.
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

import click

if TYPE_CHECKING:  # imported when used: `openfnf worker` and `timers` load this module too, via the CLI
    import aiohttp

API_VERSION = "2019-03-15"
# Actions the SDK sends as GET with every parameter in the query (spec 2.1); the rest are POST + form.
GET_ACTIONS = frozenset(
    {
        "DescribeFlow", "ListFlows", "ListFlowVersions", "DescribeFlowAlias", "ListFlowAliases",
        "DescribeExecution", "ListExecutions", "GetExecutionHistory", "DescribeSchedule", "ListSchedules",
        "DescribeMapRun", "UpdateMapRun",
    }
)  # fmt: skip
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped", "TimedOut"})


def pct(text: str) -> str:
    """RFC 3986 percent-encoding, as the SDK encodes query and form values."""
    return quote(text, safe="~")


def sign(action: str, params: dict[str, str], key_id: str, secret: str) -> tuple[str, str, bytes | None]:
    """(method, query string, form body) of a request signed with signature v1, as the SDK sends it."""
    from api.auth import signature_v1  # the front door's own recipe (spec 2.2), so both sides agree

    method = "GET" if action in GET_ACTIONS else "POST"
    common = {
        "Action": action,
        "Format": "json",
        "Version": API_VERSION,
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": key_id,
    }
    query = {**common, **params} if method == "GET" else common
    form = {} if method == "GET" else dict(params)
    query["Signature"] = signature_v1({**query, **form}, method, secret)
    return method, _encode(query), (_encode(form).encode() if form else None)


def _encode(params: dict[str, str]) -> str:
    return "&".join(f"{pct(k)}={pct(v)}" for k, v in params.items())


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `2m`, `500ms`, `1.5` (seconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (try 30s, 2m, 500ms)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


@dataclass
class Sample:
    """One request: when it was due and sent (seconds from the start), how it ended."""

    due: float
    sent: float
    latency: float  # seconds from sending to the whole answer
    status: int  # HTTP status; 0 when no answer came (connection error, timeout)
    code: str  # the error body's Code, or the exception's class name; "" on success
    name: str = ""  # the execution name, for StartExecution


@dataclass
class LoadConfig:
    """What to offer, and to whom."""

    endpoints: list[str]
    key_id: str
    secret: str
    action: str
    rate: float  # requests per second, offered
    duration: float  # seconds
    flow: str | None = None
    concurrency: int = 64
    unique_names: bool = True
    input: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: "lt" + uuid.uuid4().hex[:10])

    def request_params(self, i: int) -> dict[str, str]:
        """Parameters of request number i."""
        p: dict[str, str] = {}
        if self.flow:
            p["FlowName"] = self.flow
        if self.action == "StartExecution":
            p["ExecutionName"] = f"{self.run_id}-{i}" if self.unique_names else self.run_id
            if self.input is not None:
                p["Input"] = self.input
        p.update(self.params)
        return p


def base_url(endpoint: str) -> str:
    """`http://host:port` from `host:port` or a URL."""
    return (endpoint if "://" in endpoint else f"http://{endpoint}").rstrip("/")


async def call(
    session: aiohttp.ClientSession, endpoint: str, key_id: str, secret: str, action: str, params: dict[str, str]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One signed API call: (HTTP status, JSON body, headers)."""
    from yarl import URL

    method, query, body = sign(action, params, key_id, secret)
    headers = {"x-acs-action": action, "x-acs-version": API_VERSION}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    url = URL(f"{base_url(endpoint)}/?{query}", encoded=True)
    async with session.request(method, url, data=body, headers=headers) as resp:
        raw = await resp.read()
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"Code": f"NotJSON({raw[:40]!r})"}
        return resp.status, doc if isinstance(doc, dict) else {}, dict(resp.headers)


class Progress:
    """The live line on stderr: sent, 2xx, 429, other, achieved rate."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()

    def show(self, elapsed: float, sent: int, ok: int, throttled: int, other: int, final: bool = False) -> None:
        if not self.enabled:
            return
        rate = sent / elapsed if elapsed > 0 else 0.0
        line = f"[{elapsed:6.1f}s] sent {sent}  2xx {ok}  429 {throttled}  other {other}  achieved {rate:.1f}/s"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class RunResult:
    """Every sample and the span of the run."""

    samples: list[Sample]
    send_span: float  # seconds from the first request sent to the last
    wall: float  # seconds from the start to the last answer
    max_in_flight: int


async def run_load(cfg: LoadConfig, progress: Progress | None = None) -> RunResult:
    """Offer the load on schedule and collect every answer."""
    import aiohttp

    loop = asyncio.get_running_loop()
    total = max(1, int(round(cfg.rate * cfg.duration)))
    samples: list[Sample] = []
    slots = asyncio.Semaphore(cfg.concurrency)
    in_flight = max_in_flight = 0
    counts = {"ok": 0, "429": 0, "other": 0}
    connector = aiohttp.TCPConnector(limit=cfg.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    start = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        nonlocal in_flight, max_in_flight
        params = cfg.request_params(i)
        async with slots:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            sent = loop.time()
            status, code = 0, ""
            try:
                status, doc, _ = await call(session, cfg.endpoints[i % len(cfg.endpoints)], cfg.key_id, cfg.secret, cfg.action, params)
                code = "" if 200 <= status < 300 else str(doc.get("Code", ""))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                code = type(exc).__name__
            finally:
                in_flight -= 1
            done = loop.time()
        name = params.get("ExecutionName", "") if 200 <= status < 300 else ""
        samples.append(Sample(due - start, sent - start, done - sent, status, code, name))
        counts["ok" if 200 <= status < 300 else "429" if status == 429 else "other"] += 1

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(1)
            if progress:
                progress.show(loop.time() - start, len(samples) + in_flight, counts["ok"], counts["429"], counts["other"])

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        ticker = asyncio.create_task(report_progress())
        tasks: list[asyncio.Task[None]] = []
        for i in range(total):
            due = start + i / cfg.rate
            await asyncio.sleep(max(0.0, due - loop.time()))  # always yield, so answers are read while sending
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        ticker.cancel()
        wall = loop.time() - start
    if progress:
        progress.show(wall, len(samples), counts["ok"], counts["429"], counts["other"], final=True)
    sends = [s.sent for s in samples]
    return RunResult(sorted(samples, key=lambda s: s.due), max(sends) - min(sends) if sends else 0.0, wall, max_in_flight)


async def wait_finished(cfg: LoadConfig, names: set[str], timeout: float) -> dict[str, Any]:
    """Wait until every accepted execution has ended (ListExecutions, honouring 429s); their statuses."""
    import aiohttp

    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while True:
            token = ""
            while True:
                params = {"FlowName": cfg.flow or "", "Limit": "100", "ExecutionNamePrefix": cfg.run_id}
                if token:
                    params["NextToken"] = token
                status, doc, headers = await call(session, cfg.endpoints[0], cfg.key_id, cfg.secret, "ListExecutions", params)
                if status == 429:  # throttled ourselves: wait as told, then ask again
                    await asyncio.sleep(int(headers.get("x-acs-retry-after", "1000")) / 1000)
                    continue
                if status >= 500 and time.monotonic() < deadline:  # e.g. `openfnf chaos` on every action
                    await asyncio.sleep(0.2)
                    continue
                if status != 200:
                    raise click.ClickException(f"ListExecutions answered {status} {doc.get('Code')}: {doc.get('Message')}")
                for e in doc.get("Executions") or []:
                    if e.get("Name") in names:
                        statuses[e["Name"]] = e.get("Status", "")
                token = doc.get("NextToken") or ""
                if not token:
                    break
            unfinished = [n for n in names if statuses.get(n) not in TERMINAL]
            if not unfinished or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    by_status: dict[str, int] = {}
    for n in names:
        s = statuses.get(n, "missing")
        by_status[s] = by_status.get(s, 0) + 1
    finished = sum(v for k, v in by_status.items() if k in TERMINAL)
    return {"accepted": len(names), "finished": finished, "by_status": by_status, "all_finished": finished == len(names)}


def _param(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--param")
        k, _, v = item.partition("=")
        out[k] = v
    return out


@click.command()
@click.option("--endpoint", "endpoints", multiple=True, required=True, help="Front door URL; repeat to spread the load round-robin.")
@click.option("--access-key-id", required=True, envvar="OPENFNF_ACCESS_KEY_ID")
@click.option("--access-key-secret", required=True, envvar="OPENFNF_ACCESS_KEY_SECRET")
@click.option("--action", default="StartExecution", show_default=True, help="API action to call.")
@click.option("--flow", help="FlowName of every request (required for StartExecution).")
@click.option("--rate", required=True, type=click.FloatRange(min=0, min_open=True), help="Requests per second, offered open-loop.")
@click.option("--duration", required=True, help="How long to offer it: 30s, 2m, 500ms.")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(1, 10_000), help="Most requests in flight.")
@click.option("--unique-names/--same-name", default=True, show_default=True, help="StartExecution: a new ExecutionName each, or one for all.")
@click.option("--input", "input_", help="StartExecution Input (JSON object text).")
@click.option("--param", "params", multiple=True, help="Extra request parameter KEY=VALUE (repeatable).")
@click.option("--check-finished/--no-check-finished", default=False, help="Afterwards, wait until every accepted execution ended.")
@click.option("--check-timeout", default="60s", show_default=True, help="How long --check-finished waits.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), help="Write report.json and chart.png here.")
@click.option("--quiet", is_flag=True, help="No live progress line.")
def loadtest(
    endpoints: tuple[str, ...], access_key_id: str, access_key_secret: str, action: str, flow: str | None, rate: float,
    duration: str, concurrency: int, unique_names: bool, input_: str | None, params: tuple[str, ...],
    check_finished: bool, check_timeout: str, report_dir: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """Offer a fixed arrival rate to the front door(s) and report what came back."""
    from openfnf import loadreport

    try:
        seconds, wait_s = parse_duration(duration), parse_duration(check_timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if action == "StartExecution" and not flow:
        raise click.UsageError("StartExecution needs --flow")
    if check_finished and action != "StartExecution":
        raise click.UsageError("--check-finished applies to StartExecution")
    cfg = LoadConfig(
        endpoints=list(endpoints), key_id=access_key_id, secret=access_key_secret, action=action, rate=rate,
        duration=seconds, flow=flow, concurrency=concurrency, unique_names=unique_names, input=input_, params=_param(params),
    )  # fmt: skip
    result = asyncio.run(run_load(cfg, Progress(sys.stderr, not quiet)))
    finished = None
    if check_finished:
        names = {s.name for s in result.samples if s.name}
        finished = asyncio.run(wait_finished(cfg, names, wait_s))
    report = loadreport.build_report(cfg, result, finished)
    click.echo(loadreport.render_table(report))
    if report_dir is not None:
        paths = loadreport.write_report(report, report_dir)
        click.echo("report: " + ", ".join(str(p) for p in paths))
    if finished is not None and not finished["all_finished"]:
        sys.exit(1)
