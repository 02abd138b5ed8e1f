"""The console's MapRun page and links (issue 15 with issue 16), and the overview's shared per-minute 429s,
on a real redis-server: a MapRun made by the real driver, two front doors throttled by one rule."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient

from api.app import make_app
from common import keys
from common.fdl import parse_definition
from common.interpreter import advance
from common.interpreter.model import HistoryEvent
from common.mapruns import child_name, run_name, run_tag
from common.records import encode_history_chunk
from common.settings import Settings
from common.throttle_rules import Rule, Scope
from common.throttle_rules import encode as encode_rule
from common.tokens import make_token
from console.app import attach
from tests.frontdoor import FORM_HEADERS, signed_request
from tests.integration.test_console_access import _seed, _settings, _sign_in
from tests.integration.test_front_door_protocol import make_settings
from worker.mapruns import MapRuns

MAP_FLOW = """Type: StateMachine
StartAt: M
States:
  - Type: Map
    Name: M
    ItemsPath: $Input.xs
    MaxConcurrency: 10
    ProcessorConfig: {ExecutionMode: Express}
    Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}
    End: true
"""
PARENT = "flow-id-1/x0"  # the seeded flow `f`'s execution x0
ITEMS = 30  # more than a page (25) of children


@pytest.fixture
async def console(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> tuple[TestClient, Settings]:
    settings = _settings(redis_server, tmp_path)
    await _seed(settings, r)
    app = web.Application()
    attach(app, settings)
    return await aiohttp_client(app, cookie_jar=CookieJar(unsafe=True)), settings


def _run_a_map(r: Any, tmp_path: Path, redis_server: str) -> str:
    """A distributed Map of x0 run to its end by the worker's MapRun driver; a MapRunStarted in x0's history."""
    settings = Settings(_env_file=None, redis_url=redis_server, buckets_dir=tmp_path)
    started = {"t": "Started", "input": {"xs": list(range(ITEMS))}, "name": "x0", "flow": "f"}
    decision = advance(parse_definition(MAP_FLOW), None, [started], 1000,
                       token_for=lambda aid: make_token(settings.token_secret, "flow-id-1", "x0", aid))  # fmt: skip
    command = decision.commands[0]
    r.hset(keys.tasks(PARENT), command["id"], "waiting")
    runs = MapRuns(r, r, settings)
    assert runs.start(PARENT, command).succeeded
    name = run_name(PARENT, command["id"])
    for _ in range(50):
        if r.hget(keys.maprun(run_tag("flow-id-1", name)), "status") == b"Succeeded":
            break
        runs.drive(run_tag("flow-id-1", name))
    assert r.hget(keys.maprun(run_tag("flow-id-1", name)), "status") == b"Succeeded"
    event = HistoryEvent(9, 0, "MapRunStarted", "M", 1700000001000, {"output": {"MapRunName": name}})
    r.rpush(keys.history(PARENT), encode_history_chunk([event]))
    return name


async def test_a_parent_links_its_map_run_which_pages_its_children_which_link_back(
    console: tuple[TestClient, Settings], r: Any, tmp_path: Path, redis_server: str
) -> None:
    client, _ = console
    name = _run_a_map(r, tmp_path, redis_server)
    await _sign_in(client, "read-only")
    run_url = f"/console/flows/f/executions/x0/mapruns/{name}"
    parent = await client.get("/console/flows/f/executions/x0")
    assert parent.status == 200
    assert f'class="maprun-link" href="{run_url}"' in await parent.text()

    page = await client.get(run_url)
    text = await page.text()
    assert page.status == 200, text
    assert 'id="maprun-status">Succeeded<' in text
    assert '<td data-count="Total">30</td>' in text and '<td data-count="Succeed">30</td>' in text
    assert '<dd id="maprun-concurrency">10</dd>' in text
    first = re.findall(r'class="maprun-child" href="([^"]+)"', text)
    assert first[:2] == [f"/console/flows/f/executions/{child_name(name, i)}" for i in (0, 1)] and len(first) == 25
    more = re.search(r'id="next-page" href="([^"]+)"', text)
    assert more
    rest = re.findall(r'class="maprun-child" href="([^"]+)"', await (await client.get(more.group(1).replace("&amp;", "&"))).text())
    assert len(rest) == 5 and not set(rest) & set(first)

    child = await client.get(first[3])
    text = await child.text()
    assert child.status == 200, text
    assert f'id="maprun-link" href="{run_url}"' in text
    assert 'id="parent-link" href="/console/flows/f/executions/x0"' in text

    # The run is x0's: under another execution it does not exist.
    other = await client.get(f"/console/flows/f/executions/x1/mapruns/{name}")
    assert other.status == 404


async def test_throttled_answers_of_two_front_doors_show_on_the_overview(
    aiohttp_client: Any, console: tuple[TestClient, Settings], redis_server: str, r: Any, tmp_path: Path
) -> None:
    doors = [await aiohttp_client(make_app(make_settings(redis_server, tmp_path, throttle_refresh_ms=20))) for _ in range(2)]
    rule = Rule(action="ListFlows", rate=0.001, burst=1, scope=Scope.ACCOUNT)  # one admitted, then 429s
    r.hset(keys.THROTTLE_RULES, rule.id, encode_rule(rule))
    answered = {200: 0, 429: 0}
    for door in doors:
        throttled = 0
        deadline = time.monotonic() + 30
        while throttled < 3 and time.monotonic() < deadline:  # until this door has read the rule and refused 3
            path, form = signed_request("ListFlows", {})
            resp = await door.post(path, data=form, headers=FORM_HEADERS)
            answered[resp.status] += 1
            throttled += resp.status == 429
        assert throttled == 3
    counted = sum(int(r.get(k) or 0) for k in r.scan_iter(keys.throttled_minute(0).replace(":0", ":*")))
    assert answered[200] >= 1  # the rule's burst admits one
    assert counted == answered[429] == 6  # both doors' 429s, and none of the accepted answers
    assert all(0 < r.ttl(k) <= keys.THROTTLED_MINUTE_TTL for k in r.scan_iter(keys.throttled_minute(0).replace(":0", ":*")))

    client, _ = console
    await _sign_in(client, "full")
    overview = await (await client.get("/console/overview")).text()
    assert 'id="throttled-total">429s 6<' in overview
    assert 'aria-label="429 answers per minute"' in overview
