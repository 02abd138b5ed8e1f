"""The RPC protocol through the real app (in process) on the fixture's redis-server: shapes, sizes, ids, logs."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.actions import ALL_ACTIONS
from api.app import make_app
from common.logs import ContextFilter
from common.settings import Settings
from tests.frontdoor import (
    FORM_HEADERS,
    KEYS,
    PASS_FLOW,
    check_error,
    common_params,
    encode,
    sign,
    signed_request,
    write_credentials,
)


def make_settings(redis_url: str, tmp: Path, **overrides: Any) -> Settings:
    """Settings of an in-process front door whose keys come from a fresh credentials file."""
    creds = write_credentials(tmp / "credentials.yaml")
    base: dict[str, Any] = dict(redis_url=redis_url, credentials=creds, credentials_poll_seconds=0.05, _env_file=None)
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def client(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(make_app(make_settings(redis_server, tmp_path)))


async def call(client: TestClient, action: str, body: dict[str, str] | None = None, method: str = "POST", **kw: Any) -> tuple[int, Any, str]:
    path, form = signed_request(action, body, method=method, **kw)
    if method == "GET":
        resp = await client.get(path)
    else:
        resp = await client.post(path, data=form, headers=FORM_HEADERS)
    return resp.status, resp.headers, await resp.text()


async def create_flow(client: TestClient, name: str, key_id: str = "AKA") -> dict[str, Any]:
    status, _, text = await call(client, "CreateFlow", {"Name": name, "Definition": PASS_FLOW.format(name=name), "Type": "FDL"}, key_id=key_id)
    assert status == 200, text
    return dict(json.loads(text))


async def test_get_query_post_form_and_post_json_are_all_read(client: TestClient) -> None:
    created = await create_flow(client, "shapes")
    assert created["Name"] == "shapes" and created["RequestId"]
    status, headers, text = await call(client, "DescribeFlow", {"Name": "shapes"}, method="GET")
    assert status == 200 and json.loads(text)["Name"] == "shapes"
    assert headers["x-acs-request-id"] == json.loads(text)["RequestId"]
    # A JSON body: its parameters are read (and signed, as form parameters are).
    body = {"Name": "shapes"}
    query = sign(common_params("DescribeFlow", "AKA"), body, "POST", KEYS["AKA"][0])
    resp = await client.post("/?" + encode(query), data=json.dumps(body), headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status == 200 and (await resp.json())["Name"] == "shapes"
    # A JSON body parameter that was not signed is caught.
    resp = await client.post("/?" + encode(query), data=json.dumps({"Name": "other"}), headers={"Content-Type": "application/json"})
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNotMatch", 403)


async def test_action_and_version_headers_must_name_the_signed_ones(client: TestClient) -> None:
    await create_flow(client, "by_header")
    # The headers the Python SDK sends beside the signed query parameters agree: fine.
    path, _ = signed_request("DescribeFlow", {"Name": "by_header"}, method="GET")
    resp = await client.get(path, headers={"x-acs-action": "DescribeFlow", "x-acs-version": "2019-03-15"})
    assert resp.status == 200, await resp.text()
    # A query Action and an x-acs-action header that disagree are refused rather than guessed.
    path, _ = signed_request("DescribeFlow", {"Name": "by_header"}, method="GET")
    resp = await client.get(path, headers={"x-acs-action": "DeleteFlow"})
    body = check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)
    assert "x-acs-action" in body["Message"]


@pytest.mark.parametrize("ctype", ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/octet-stream"])
async def test_a_body_of_another_content_type_is_415(client: TestClient, ctype: str) -> None:
    path, _ = signed_request("ListFlows")
    resp = await client.post(path, data=b"Name=x", headers={"Content-Type": ctype})
    check_error(resp.status, resp.headers, await resp.text(), "UnsupportedMediaType", 415)


async def test_unknown_action_and_other_version_have_the_documented_messages(client: TestClient) -> None:
    status, headers, text = await call(client, "DescribeFlows")
    body = check_error(status, headers, text, "ActionNotSupported", 400)
    assert body["Message"] == "The requested API operation 'DescribeFlows' is incorrect. Please check."
    status, headers, text = await call(client, "ListFlows", Version="2020-01-01")
    body = check_error(status, headers, text, "APIVersionNotSupported", 400)
    assert "2020-01-01" in body["Message"]
    resp = await client.get("/?Version=2019-03-15")
    body = check_error(resp.status, resp.headers, await resp.text(), "MissingRequiredParams", 400)
    assert body["Message"] == "The HTTP query 'Action' must be specified."


async def test_all_29_actions_are_recognised(client: TestClient) -> None:
    assert len(ALL_ACTIONS) == 30 and len(set(ALL_ACTIONS)) == 30  # the 29 of the API and RedriveExecution (issue 18)
    for action in ALL_ACTIONS:
        status, _, text = await call(client, action)
        body = json.loads(text)
        # Recognised: never the "incorrect operation" answer. With no parameters, an action with a
        # required one names it; DescribeRegions and ListFlows need none.
        assert body.get("Code") != "ActionNotSupported" or "not supported by this server yet" in body["Message"], (action, body)
        assert "is incorrect" not in body.get("Message", ""), (action, body)
        assert status in (200, 400), (action, status, body)


async def test_404_and_405_carry_request_ids_and_the_error_body(client: TestClient) -> None:
    for method, path, code, status in [
        ("GET", "/nope", "PathNotFound", 404),
        ("POST", "/v1/flows", "PathNotFound", 404),
        ("PUT", "/", "MethodNotAllowed", 405),
        ("DELETE", "/", "MethodNotAllowed", 405),
    ]:
        resp = await client.request(method, path)
        check_error(resp.status, resp.headers, await resp.text(), code, status)


async def test_a_repeated_parameter_counts_once_the_first(client: TestClient) -> None:
    await create_flow(client, "first")
    query = sign(common_params("DescribeFlow", "AKA", Name="first"), {}, "GET", KEYS["AKA"][0])
    resp = await client.get("/?" + encode(query) + "&Name=second")
    assert resp.status == 200 and (await resp.json())["Name"] == "first"


async def test_broken_percent_escapes_and_bad_utf8_are_400_not_500(client: TestClient) -> None:
    for suffix in ["&Name=%FF%FE", "&Name=%E2%82", "&%C3=1"]:
        path, _ = signed_request("DescribeFlow", {"Name": "x"}, method="GET")
        resp = await client.get(path + suffix)
        check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)
    path, _ = signed_request("ListFlows")
    resp = await client.post(path, data=b"Limit=%zz&x=\xff", headers=FORM_HEADERS)
    check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)


async def test_a_body_over_1_mib_is_entity_too_large(client: TestClient) -> None:
    path, _ = signed_request("StartExecution", {"FlowName": "f"})
    big = b"Input=" + b"a" * (1024 * 1024)
    resp = await client.post(path, data=big, headers=FORM_HEADERS)
    body = check_error(resp.status, resp.headers, await resp.text(), "EntityTooLarge", 400)
    assert body["Message"] == "The payload size exceeds maximum allowed size (1048576 bytes)."

    async def chunks() -> Any:  # no Content-Length: chunked transfer, counted while read
        for _ in range(20):
            yield b"a" * (128 * 1024)

    resp = await client.post(path, data=chunks(), headers=FORM_HEADERS)
    check_error(resp.status, resp.headers, await resp.text(), "EntityTooLarge", 400)
    # Exactly at the limit is fine (the answer is then about the parameters, not the size).
    exact = b"X=" + b"a" * (1024 * 1024 - 2)
    resp = await client.post(path, data=exact, headers=FORM_HEADERS)
    assert (await resp.json())["Code"] != "EntityTooLarge"


async def test_the_size_limit_is_decided_before_the_body_is_sent(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    """Raw socket: announce 50 MiB, send 10 bytes, and the refusal arrives at once."""
    client = await aiohttp_client(make_app(make_settings(redis_server, tmp_path)))
    path, _ = signed_request("StartExecution", {"FlowName": "f"})
    host, port = client.server.host, client.server.port
    for framing in (b"Content-Length: 52428800\r\n", b"Transfer-Encoding: chunked\r\n"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n".encode() + framing + b"\r\n"
        )
        if b"chunked" in framing:
            chunk = b"a" * 65536
            for _ in range(17):  # 1.06 MiB in chunks; the other 48 MiB never come
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            writer.write(b"Input=abcd")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 400"), head
        assert b"x-acs-request-id" in head.lower()
        writer.close()


async def test_logs_carry_the_request_id(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO, logger="api"):
        status, headers, text = await call(client, "ListFlows", secret="wrong")
    check_error(status, headers, text, "SignatureNotMatch", 403)
    records = [rec for rec in caplog.records if "signature" in rec.getMessage()]
    assert records, caplog.text
    assert all(getattr(rec, "request_id", None) == headers["x-acs-request-id"] for rec in records)


async def test_bytes_that_are_not_utf8_in_headers_or_json_escapes_are_400(client: TestClient) -> None:
    """Raw non-UTF-8 header bytes (aiohttp passes them on as surrogates) and JSON `\\udcff` escapes are refused."""
    path, _ = signed_request("ListFlows")
    host, port = client.server.host, client.server.port
    for extra in (b"x-acs-action: \xff\xfe\r\n", b"If-Match: \xff\r\n", b"x-acs-date: \xc3\x28\r\n"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"Connection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), data[:300]
        assert json.loads(body)["Code"] == "InvalidArgument"
        writer.close()
    query = sign(common_params("DescribeFlow", "AKA"), {}, "POST", KEYS["AKA"][0])
    resp = await client.post("/?" + encode(query), data=b'{"Name": "\\udcff"}', headers={"Content-Type": "application/json"})
    check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)
