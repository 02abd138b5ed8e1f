"""Console authorisation (every route x key kind), CSRF refusal, sessions and the sign-in limit, on a real redis-server."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient

from common import keys
from common.mapruns import run_tag
from common.records import definition_id
from common.settings import Settings
from common.store import Store
from console.access import ROUTES
from console.app import attach

ACCOUNT, OTHER_ACCOUNT = "1111111111", "2222222222"
KEYS = {  # kind -> (id, secret, account, policy)
    "full": ("KFULL", "secret-full-0123", ACCOUNT, None),
    "read-only": ("KRO", "secret-ro-012345", ACCOUNT, [{"effect": "Allow", "action": ["fnf:Describe*", "fnf:List*", "fnf:Get*"], "resource": "*"}]),
    "none": ("KNONE", "secret-none-0123", ACCOUNT, []),
    "other-account": ("KOTHER", "secret-other-012", OTHER_ACCOUNT, None),
}
FLOW = "Type: StateMachine\nSpecVersion: v1\nStartAt: W\nStates:\n  - Type: Wait\n    Name: W\n    Seconds: 600\n    End: true\n"


def _settings(redis_url: str, tmp: Path) -> Settings:
    accounts: dict[str, list[dict[str, Any]]] = {}
    for key_id, secret, account, policy in KEYS.values():
        entry: dict[str, Any] = {"id": key_id, "secret": secret}
        if policy is not None:
            entry["policy"] = policy
        accounts.setdefault(account, []).append(entry)
    path = tmp / "credentials.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{"id": a, "access_keys": k} for a, k in accounts.items()]}), encoding="utf-8")
    return Settings(_env_file=None, redis_url=redis_url, credentials=path, console_signin_attempts=5)  # type: ignore[call-arg]


async def _seed(settings: Settings, r: Any) -> dict[str, str]:
    """A flow `f` in ACCOUNT with a running execution per test that acts on one."""
    from common.redisclients import async_state_client

    client = async_state_client(settings)  # a single Redis, or the cluster (tests/integration/test_console_cluster.py)
    store = Store(client, settings)
    def_id = definition_id(FLOW)
    fields = {"Id": "flow-id-1", "Name": "f", "Definition": FLOW, "DefId": def_id, "Type": "FDL", "ExecutionMode": "Standard",
              "CreatedTime": "1700000000000", "LastModifiedTime": "1700000000000"}  # fmt: skip
    await store.create_flow(ACCOUNT, "f", def_id, FLOW, fields)
    names = {}
    for i in range(4):
        claim = await store.claim_execution(
            account=ACCOUNT, flow=fields, name=f"x{i}", raw_input="{}", input_obj={}, def_id=def_id, qualifier="", callback="", now=1700000000000 + i
        )
        names[f"x{i}"] = claim.fields["name"]
    await client.hset(keys.execution(keys.execution_tag("flow-id-1", "x3")), mapping={"status": "Failed", "error": "E", "cause": "C"})  # x3 ended: redrivable
    run = {"pname": "x0", "name": "r0", "status": "Running", "started": "1700000000000", "conc": "2", "total": "3", "running": "1"}
    await client.hset(keys.maprun(run_tag("flow-id-1", "r0")), mapping=run)  # a distributed Map's run of x0
    await client.aclose()
    return names


@pytest.fixture
async def console(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> tuple[TestClient, Settings]:
    settings = _settings(redis_server, tmp_path)
    await _seed(settings, r)
    app = web.Application()
    attach(app, settings)
    client = await aiohttp_client(app, cookie_jar=CookieJar(unsafe=True))
    return client, settings


async def _sign_in(client: TestClient, kind: str) -> str:
    key_id, secret, _, _ = KEYS[kind]
    client.session.cookie_jar.clear()
    page = await client.get("/console/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf
    resp = await client.post("/console/signin", data={"csrf": csrf.group(1), "access_key_id": key_id, "access_key_secret": secret}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    flows = await client.get("/console/flows")
    token = re.search(r'name="csrf" value="([^"]+)"', await flows.text())
    assert token
    return token.group(1)


PATHS = {
    "flows": ("GET", "/console/flows", {}),
    "overview": ("GET", "/console/overview", {}),
    "flow": ("GET", "/console/flows/f", {}),
    "start": ("POST", "/console/flows/f/start", {"input": "{}"}),
    "execution": ("GET", "/console/flows/f/executions/x0", {}),
    "live": ("GET", "/console/flows/f/executions/x0/live", {}),
    "maprun": ("GET", "/console/flows/f/executions/x0/mapruns/r0", {}),
    "stop": ("POST", "/console/flows/f/executions/x1/stop", {"error": "E", "cause": "C"}),
    "restart": ("POST", "/console/flows/f/executions/x0/restart", {}),
    "redrive": ("POST", "/console/flows/f/executions/x3/redrive", {}),
    "report": ("POST", "/console/flows/f/executions/x0/report", {"token": "bm90LWEtdG9rZW4=", "outcome": "succeeded", "output": "{}"}),
}
# route -> key kind -> status. 403: the policy refuses; 404: another account's flow does not exist for it;
# report with a bogus token is 400 once allowed (authorised, then the token is checked).
ALLOWED = {"GET": 200, "POST": 303}
TABLE = {
    name: {
        "full": 400 if name == "report" else ALLOWED[PATHS[name][0]],
        "read-only": ALLOWED["GET"] if PATHS[name][0] == "GET" else 403,
        "none": 403,
        "other-account": ALLOWED["GET"] if name in ("flows", "overview") else 404,
    }
    for name in PATHS
}


def test_the_table_covers_every_console_route() -> None:
    assert set(PATHS) == {r.name for r in ROUTES}


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("route", list(PATHS))
async def test_authorisation_of_every_route_for_every_key_kind(console: tuple[TestClient, Settings], route: str, kind: str) -> None:
    client, _ = console
    csrf = await _sign_in(client, kind)
    method, path, data = PATHS[route]
    if method == "GET":
        resp = await client.get(path, allow_redirects=False)
    else:
        resp = await client.post(path, data={"csrf": csrf, **data}, allow_redirects=False)
    assert resp.status == TABLE[route][kind], (route, kind, (await resp.text())[:500])


@pytest.mark.parametrize("route", [name for name, (method, _, _) in PATHS.items() if method == "POST"])
@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
async def test_a_state_changing_form_without_its_csrf_token_is_refused(console: tuple[TestClient, Settings], route: str, csrf: str | None) -> None:
    client, _ = console
    await _sign_in(client, "full")
    _, path, data = PATHS[route]
    form = dict(data) if csrf is None else {"csrf": csrf, **data}
    resp = await client.post(path, data=form, allow_redirects=False)
    assert resp.status == 403
    assert "CSRF" in await resp.text()
    live = await client.get("/console/flows/f/executions/x1/live")
    assert (await live.json())["status"] == "Running"  # nothing was done


async def test_signed_out_visitors_are_sent_to_sign_in_and_forms_refused(console: tuple[TestClient, Settings]) -> None:
    client, _ = console
    for route, (method, path, data) in PATHS.items():
        if method == "GET" and route != "live":
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 303 and resp.headers["Location"].startswith("/console/signin"), route
        else:
            resp = await client.request(method, path, data=data, allow_redirects=False)
            assert resp.status == 401, route


async def test_sessions_are_server_side_with_a_ttl_and_end_on_sign_out(console: tuple[TestClient, Settings], r: Any) -> None:
    client, settings = console
    csrf = await _sign_in(client, "full")
    cookie = next(c for c in client.session.cookie_jar if c.key == "openfnf_console")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    stored = r.keys("fnf:console:s:*")
    assert len(stored) == 1 and 0 < r.ttl(stored[0]) <= settings.console_session_seconds
    resp = await client.post("/console/signout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert r.keys("fnf:console:s:*") == []
    client.session.cookie_jar.update_cookies({"openfnf_console": cookie.value})
    resp = await client.get("/console/flows", allow_redirects=False)
    assert resp.status == 303  # the old cookie no longer signs in


async def test_wrong_credentials_say_nothing_about_which_part_and_attempts_are_limited(console: tuple[TestClient, Settings]) -> None:
    client, settings = console
    page = await client.get("/console/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert found
    csrf = found.group(1)
    answers = []
    for key_id, secret in [("KFULL", "wrong"), ("NOSUCHKEY", "secret-full-0123"), ("KFULL", "wrong")]:
        resp = await client.post("/console/signin", data={"csrf": csrf, "access_key_id": key_id, "access_key_secret": secret})
        answers.append((resp.status, re.findall(r'id="signin-error">([^<]*)', await resp.text())))
    assert answers == [(401, ["Wrong access key id or secret."])] * 3
    for _ in range(settings.console_signin_attempts - len(answers)):
        resp = await client.post("/console/signin", data={"csrf": csrf, "access_key_id": "KFULL", "access_key_secret": "wrong"})
        assert resp.status == 401
    resp = await client.post("/console/signin", data={"csrf": csrf, "access_key_id": "KFULL", "access_key_secret": "secret-full-0123"})
    assert resp.status == 429  # even the right secret waits once the limit is reached
    assert "Too many sign-in attempts" in await resp.text()
    resp = await client.post("/console/signin", data={"access_key_id": "KFULL", "access_key_secret": "secret-full-0123"})
    assert resp.status == 403  # the sign-in form carries its own CSRF token too


async def test_the_overview_lists_heartbeats_throttling_rules_and_executions_per_minute(console: tuple[TestClient, Settings], r: Any) -> None:
    import time

    from common.throttle_rules import Rule, encode

    client, _ = console
    now = int(time.time() * 1000)
    r.zadd(keys.HEARTBEATS, {"worker:host-a/101": now, "timers:host-a/102": now - 120_000})
    r.hset(keys.THROTTLE_RULES, "account/StartExecution/*", encode(Rule(action="StartExecution", rate=5, burst=10)))
    await _sign_in(client, "full")
    page = await (await client.get("/console/overview")).text()
    rows = re.findall(r"<tr><td>(worker|timers)</td><td>([^<]+)</td><td>[^<]*</td><td><span[^>]*>(alive|silent)</span>", page)
    assert sorted(rows) == [("timers", "host-a/102", "silent"), ("worker", "host-a/101", "alive")]
    assert "<td>StartExecution</td>" in page
    assert '<svg class="minutes"' in page


async def test_after_sign_in_the_page_asked_for_opens_and_only_console_pages(console: tuple[TestClient, Settings]) -> None:
    client, _ = console
    resp = await client.get("/console/flows/f?status=Running&prefix=x", allow_redirects=False)
    assert resp.status == 303
    target = resp.headers["Location"]
    page = await client.get(target)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf
    key_id, secret, _, _ = KEYS["full"]
    form = {"csrf": csrf.group(1), "access_key_id": key_id, "access_key_secret": secret}
    signed = await client.post(target, data=form, allow_redirects=False)
    assert signed.headers["Location"] == "/console/flows/f?status=Running&prefix=x"
    client.session.cookie_jar.clear()
    page = await client.get("/console/signin?next=//evil.example/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf
    form["csrf"] = csrf.group(1)
    signed = await client.post("/console/signin?next=//evil.example/", data=form, allow_redirects=False)
    assert signed.headers["Location"] == "/console/flows"  # never off the console


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
async def test_report_delivers_the_task_event_once(console: tuple[TestClient, Settings], r: Any, outcome: str) -> None:
    import json as _json

    from common.tokens import make_token

    client, settings = console
    tag = keys.execution_tag("flow-id-1", "x2")
    r.hset(keys.tasks(tag), "7", "waiting")
    token = make_token(settings.token_secret, "flow-id-1", "x2", "7")
    csrf = await _sign_in(client, "full")
    form = {"csrf": csrf, "token": token, "outcome": outcome, "output": '{"ok": 1}', "error": "Rejected", "cause": "by a person"}
    resp = await client.post("/console/flows/f/executions/x2/report", data=form, allow_redirects=False)
    assert resp.status == 303
    event = _json.loads(r.lrange(keys.inbox(tag), -1, -1)[0])
    expected = {"t": "TaskReported", "id": "7", "ok": True, "output": {"ok": 1}} if outcome == "succeeded" else {
        "t": "TaskReported", "id": "7", "ok": False, "error": "Rejected", "cause": "by a person"}  # fmt: skip
    assert event == expected
    assert r.lrange(settings.drive_queue, 0, -1), "the execution was handed to the workers"
    again = await client.post("/console/flows/f/executions/x2/report", data=form, allow_redirects=False)
    assert again.status == 409 and "TaskAlreadyCompleted" in await again.text()
    elsewhere = await client.post("/console/flows/f/executions/x0/report", data=form, allow_redirects=False)
    assert elsewhere.status == 400 and "another execution" in await elsewhere.text()


async def test_the_flow_page_lists_versions_and_aliases(console: tuple[TestClient, Settings]) -> None:
    import redis.asyncio as aioredis

    client, settings = console
    redis_client = aioredis.from_url(settings.redis_url)
    store = Store(redis_client, settings)
    assert await store.versions.publish(ACCOUNT, "f", "first cut", 1_700_000_000_000) == 1
    alias = {"Name": "live", "Description": "", "RoutingConfigurations": [{"Version": "1", "Weight": 100}]}
    assert (await store.versions.put_alias(ACCOUNT, "f", "live", alias, ["1"], 1_700_000_000_000, create=True)).ok
    await redis_client.aclose()
    await _sign_in(client, "full")
    page = await (await client.get("/console/flows/f")).text()
    assert "<td>1</td><td>first cut</td><td>2023-11-14 22:13:20.000 UTC</td>" in page
    assert "<td>live</td><td>v1 (100%) </td>" in page


async def test_redrive_button_reopens_a_failed_execution_through_control(console: tuple[TestClient, Settings], r: Any) -> None:

    client, _ = console
    await _sign_in(client, "read-only")
    page = await (await client.get("/console/flows/f/executions/x3")).text()
    assert 'id="redrive"' in page and 'id="redrive-not-allowed"' in page  # shown, but this key may not
    csrf = await _sign_in(client, "full")
    running = await (await client.get("/console/flows/f/executions/x0")).text()
    assert 'id="redrive"' not in running  # a Running execution has no redrive button
    page = await (await client.get("/console/flows/f/executions/x3")).text()
    assert 'id="redrive"' in page and "redrive-not-allowed" not in page
    resp = await client.post("/console/flows/f/executions/x3/redrive", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    tag = keys.execution_tag("flow-id-1", "x3")
    assert r.hget(keys.execution(tag), "status") == b"Running" and r.hget(keys.execution(tag), "redrives") == b"1"
    assert [json.loads(e) for e in r.lrange(keys.inbox(tag), -1, -1)] == [{"t": "Redriven", "n": 1}]
    again = await client.post("/console/flows/f/executions/x3/redrive", data={"csrf": csrf}, allow_redirects=False)
    assert again.status == 400 and "ExecutionNotRedrivable" in await again.text()
