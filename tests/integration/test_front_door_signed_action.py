"""What runs is what was signed: the action and version of a request come from what its signature covers.

The pop-core cases are the exact raw HTTP requests `@alicloud/pop-core` 1.8.0 sends (captured from
it, reproduced here byte for byte so that the tests need no Node.js): it signs `Action=ListFlows`
(its `formatAction` upper-cases the first letter) while sending the header `x-acs-action: listFlows`.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from tests.frontdoor import FORM_HEADERS, KEYS, PASS_FLOW, check_error, common_params, encode, sign, signed_request, timestamp
from tests.integration.test_front_door_auth import acs3_headers
from tests.integration.test_front_door_protocol import make_settings

POP_CORE_UA = "AlibabaCloud (linux; x64) Node.js/v20.20.2 Core/1.8.0"
POP_CORE_CLIENT = "Node.js(v20.20.2), @alicloud/pop-core: 1.8.0"


def _pop_encode(text: str) -> str:
    """pop-core's encode(): encodeURIComponent, then ! ' ( ) * escaped too (RFC 3986)."""
    return quote(text, safe="-_.~")


def pop_core_params(action: str, params: dict[str, str], key_id: str, secret: str, method: str, *, nonce: str, ts: str) -> str:
    """The canonicalized, signed parameters pop-core's RPCClient.request(action, params, {method}) sends."""
    signed = {
        "Action": action[:1].upper() + action[1:],  # formatAction
        "Format": "JSON", "Timestamp": ts, "Version": "2019-03-15", "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0", "SignatureNonce": nonce, "AccessKeyId": key_id,
        **{k[:1].upper() + k[1:]: v for k, v in params.items()},  # formatParams
    }  # fmt: skip
    pairs = [(_pop_encode(k), _pop_encode(v)) for k, v in sorted(signed.items())]
    canon = "&".join(f"{k}={v}" for k, v in pairs)
    string_to_sign = f"{method}&{_pop_encode('/')}&{_pop_encode(canon)}"
    signature = base64.b64encode(hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()
    return canon + "&Signature=" + _pop_encode(signature)


def pop_core_request(action: str, params: dict[str, str], host: str, method: str = "GET", key_id: str = "AKA", **extra_headers: str) -> bytes:
    """The raw HTTP/1.1 request pop-core sends for client.request(action, params, {method})."""
    canon = pop_core_params(action, params, key_id, KEYS[key_id][0], method, nonce=uuid.uuid4().hex, ts=timestamp())
    headers = {"x-sdk-client": POP_CORE_CLIENT, "user-agent": POP_CORE_UA, "x-acs-action": action, "x-acs-version": "2019-03-15"}
    headers.update({k.replace("_", "-"): v for k, v in extra_headers.items()})
    if method == "POST":
        headers["content-type"] = "application/x-www-form-urlencoded"
        target, body = "/", canon.encode()
    else:
        target, body = "/?" + canon, b""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Host: {host}\r\nConnection: close\r\n"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def send_raw(client: TestClient, raw: bytes) -> tuple[int, dict[str, str], str]:
    """Send raw bytes; the status, headers (lower-case names) and body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=30)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        body = out
    return int(lines[0].split()[1]), headers, body.decode()


@pytest.fixture
async def client(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(make_app(make_settings(redis_server, tmp_path)))


async def create_flow(client: TestClient, name: str) -> None:
    path, form = signed_request("CreateFlow", {"Name": name, "Definition": PASS_FLOW.format(name=name), "Type": "FDL"})
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    assert resp.status == 200, await resp.text()


async def flow_exists(client: TestClient, name: str) -> bool:
    path, _ = signed_request("DescribeFlow", {"Name": name}, method="GET")
    resp = await client.get(path)
    assert resp.status in (200, 404), await resp.text()
    return resp.status == 200


def test_the_reproduction_is_byte_for_byte_what_pop_core_sent() -> None:
    """A GET captured from pop-core 1.8.0 (`client.request('listFlows', {limit: 5})`), nonce and time as it chose them."""
    captured = (
        "AccessKeyId=AKA&Action=ListFlows&Format=JSON&Limit=5&SignatureMethod=HMAC-SHA1"
        "&SignatureNonce=e7cef1430c9448b4a81f8a45341955cd&SignatureVersion=1.0&Timestamp=2026-12-04T13%3A48%3A06Z"
        "&Version=2019-03-15&Signature=BNmPz8C2Wpcf7jBFq%2BTH4dknJ5M%3D"
    )
    ours = pop_core_params(
        "listFlows", {"limit": "5"}, "AKA", KEYS["AKA"][0], "GET", nonce="e7cef1430c9448b4a81f8a45341955cd", ts="2026-12-04T13:48:06Z"
    )
    assert ours == captured
    captured_post = (
        "AccessKeyId=AKA&Action=DescribeFlow&Format=JSON&Name=a%20b%2A&SignatureMethod=HMAC-SHA1"
        "&SignatureNonce=09cf4d3bbe11809cbdf1d4f384e9bd53&SignatureVersion=1.0&Timestamp=2026-12-04T13%3A48%3A07Z"
        "&Version=2019-03-15&Signature=TG0En10Ao3jwzW8BoG81ZFP9dKQ%3D"
    )
    ours = pop_core_params(
        "describeFlow", {"name": "a b*"}, "AKA", KEYS["AKA"][0], "POST", nonce="09cf4d3bbe11809cbdf1d4f384e9bd53", ts="2026-12-04T13:48:07Z"
    )
    assert ours == captured_post


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_pop_core_requests_with_a_lower_case_header_run(client: TestClient, method: str) -> None:
    """pop-core signs Action=ListFlows and sends x-acs-action: listFlows: the same action, in any letter case."""
    await create_flow(client, "popcore")
    host = f"{client.server.host}:{client.server.port}"
    status, headers, text = await send_raw(client, pop_core_request("listFlows", {"limit": "5"}, host, method))
    assert status == 200, text
    assert [f["Name"] for f in json.loads(text)["Flows"]] == ["popcore"]
    status, _, text = await send_raw(client, pop_core_request("describeFlow", {"name": "popcore"}, host, method))
    assert status == 200 and json.loads(text)["Name"] == "popcore", text


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_unsigned_header_naming_another_action_is_refused_never_obeyed(client: TestClient, method: str) -> None:
    """Signature v1 signs Action=DescribeFlow; an added x-acs-action: DeleteFlow is 400, and the flow stays."""
    await create_flow(client, "kept")
    host = f"{client.server.host}:{client.server.port}"
    raw = pop_core_request("describeFlow", {"name": "kept"}, host, method)
    tampered = raw.replace(b"x-acs-action: describeFlow", b"x-acs-action: DeleteFlow")
    status, headers, text = await send_raw(client, tampered)
    body = check_error(status, headers, text, "InvalidArgument", 400)
    assert "x-acs-action" in body["Message"]
    assert await flow_exists(client, "kept")
    # Another version in the header: refused too.
    raw = pop_core_request("describeFlow", {"name": "kept"}, host, method)
    status, headers, text = await send_raw(client, raw.replace(b"x-acs-version: 2019-03-15", b"x-acs-version: 2020-01-01"))
    body = check_error(status, headers, text, "InvalidArgument", 400)
    assert "x-acs-version" in body["Message"]


async def test_an_action_only_in_an_unsigned_header_is_missing(client: TestClient) -> None:
    """Signature v1 with no signed Action: the header alone names nothing that runs."""
    await create_flow(client, "by_header")
    query = common_params("DescribeFlow", "AKA", Name="by_header")
    del query["Action"]
    query = sign(query, {}, "GET", KEYS["AKA"][0])
    resp = await client.get("/?" + encode(query), headers={"x-acs-action": "DeleteFlow", "x-acs-version": "2019-03-15"})
    check_error(resp.status, resp.headers, await resp.text(), "MissingRequiredParams", 400)
    assert await flow_exists(client, "by_header")


async def test_a_query_action_added_to_a_signed_post_body_is_refused(client: TestClient) -> None:
    """pop-core POSTs every parameter in the body; `?Action=DeleteFlow` added to its URL does not run."""
    await create_flow(client, "body_signed")
    host = f"{client.server.host}:{client.server.port}"
    raw = pop_core_request("describeFlow", {"name": "body_signed"}, host, "POST").replace(b"x-acs-action: describeFlow\r\n", b"")
    status, headers, text = await send_raw(client, raw.replace(b"POST / HTTP/1.1", b"POST /?Action=DeleteFlow HTTP/1.1"))
    body = check_error(status, headers, text, "InvalidArgument", 400)
    assert "Action" in body["Message"]
    assert await flow_exists(client, "body_signed")


async def test_a_parameter_in_query_and_body_with_two_values_is_refused(client: TestClient) -> None:
    await create_flow(client, "twice")
    path, form = signed_request("DescribeFlow", {"Name": "twice"})
    resp = await client.post(path + "&Name=other", data=form, headers=FORM_HEADERS)
    body = check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)
    assert "Name" in body["Message"]
    # The same value in both is one meaning: it runs.
    resp = await client.post(path + "&Name=twice", data=form, headers=FORM_HEADERS)
    assert resp.status == 200 and (await resp.json())["Name"] == "twice", await resp.text()


async def test_acs3_takes_the_signed_header_in_any_letter_case(client: TestClient) -> None:
    """ACS3 signs x-acs-action: it names the action; a query Action naming another is refused."""
    await create_flow(client, "acs3_case")
    host = f"{client.server.host}:{client.server.port}"
    query = {"Name": "acs3_case"}
    headers = acs3_headers("GET", query, b"", None, "describeflow", "AKA", KEYS["AKA"][0], host)
    resp = await client.get("/?" + encode(query), headers=headers)
    assert resp.status == 200 and (await resp.json())["Name"] == "acs3_case", await resp.text()
    query = {"Name": "acs3_case", "Action": "DeleteFlow"}
    headers = acs3_headers("GET", query, b"", None, "DescribeFlow", "AKA", KEYS["AKA"][0], host)
    resp = await client.get("/?" + encode(query), headers=headers)
    check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)
    assert await flow_exists(client, "acs3_case")


def python_sdk_request(sdk: str, action: str, params: dict[str, str], host: str, header_action: str) -> bytes:
    """The raw request of the Python SDKs (captured from them): every parameter in the query, the action
    also in x-acs-action; the new SDK (Tea) GETs, the old one (aliyunsdkcore CommonRequest) POSTs an empty body."""
    if sdk == "tea":
        query = {"Action": action, "Format": "json", "Version": "2019-03-15", "Timestamp": timestamp(),
                 "SignatureNonce": uuid.uuid4().hex, **params, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                 "AccessKeyId": "AKA"}  # fmt: skip
        method, head = "GET", f"Accept-Encoding: identity\r\nhost: {host}\r\nx-acs-version: 2019-03-15\r\nx-acs-action: {header_action}\r\n"
        head += "user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2\r\nx-acs-credentials-provider: static_ak\r\n"
    else:
        query = {**params, "Version": "2019-03-15", "Action": action, "Format": "JSON", "RegionId": "cn-hangzhou",
                 "Timestamp": timestamp(), "SignatureMethod": "HMAC-SHA1", "SignatureType": "", "SignatureVersion": "1.0",
                 "SignatureNonce": uuid.uuid4().hex, "AccessKeyId": "AKA"}  # fmt: skip
        method, head = "POST", f"Host: {host}\r\nUser-Agent: AlibabaCloud (Linux;x86_64) Python/3.11.7 Core/2.16.1\r\n"
        head += f"Accept-Encoding: identity\r\nAccept: */*\r\nx-acs-action: {header_action}\r\nx-acs-version: 2019-03-15\r\n"
        head += "x-sdk-invoke-type: common\r\nx-sdk-client: python/2.0.0\r\nContent-Length: 0\r\n"
    signed = sign(query, {}, method, KEYS["AKA"][0])
    return f"{method} /?{encode(signed)} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode()


@pytest.mark.parametrize("sdk", ["tea", "aliyunsdkcore"])
async def test_the_python_sdks_requests_run_and_a_swapped_header_is_refused(client: TestClient, sdk: str) -> None:
    await create_flow(client, "py_sdk")
    host = f"{client.server.host}:{client.server.port}"
    status, _, text = await send_raw(client, python_sdk_request(sdk, "DescribeFlow", {"Name": "py_sdk"}, host, "DescribeFlow"))
    assert status == 200 and json.loads(text)["Name"] == "py_sdk", text
    status, headers, text = await send_raw(client, python_sdk_request(sdk, "DescribeFlow", {"Name": "py_sdk"}, host, "DeleteFlow"))
    check_error(status, headers, text, "InvalidArgument", 400)
    assert await flow_exists(client, "py_sdk")
