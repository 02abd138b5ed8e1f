"""Authentication, replay, policies and key reloads through the real app (in process) on the fixture's redis-server."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp.test_utils import TestClient

from api.app import KEYS as KEYRING
from api.app import make_app
from common import keys
from tests.frontdoor import (
    ACCOUNT_A,
    FORM_HEADERS,
    KEYS,
    PASS_FLOW,
    check_error,
    common_params,
    credentials_doc,
    encode,
    sign,
    signed_request,
    timestamp,
)
from tests.integration.test_front_door_protocol import make_settings


@pytest.fixture
async def client(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(make_app(make_settings(redis_server, tmp_path)))


async def post(client: TestClient, path: str, form: str) -> tuple[int, Any, str]:
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    return resp.status, resp.headers, await resp.text()


async def test_signature_failures_each_have_their_code(client: TestClient) -> None:
    assert (await post(client, *signed_request("ListFlows")))[0] == 200
    check_error(*await post(client, *signed_request("ListFlows", secret="wrong")), "SignatureNotMatch", 403)
    check_error(*await post(client, *signed_request("ListFlows", key_id="AKUNKNOWN", secret="x")), "InvalidAccessKeyID", 403)
    check_error(*await post(client, *signed_request("ListFlows", key_id="AKOFF")), "InvalidAccessKeyID", 403)
    check_error(*await post(client, *signed_request("ListFlows", Timestamp=timestamp(-16 * 60))), "RequestTimeTooSkewed", 403)
    check_error(*await post(client, *signed_request("ListFlows", Timestamp=timestamp(+16 * 60))), "RequestTimeTooSkewed", 403)
    assert (await post(client, *signed_request("ListFlows", Timestamp=timestamp(-14 * 60))))[0] == 200
    for name in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce"):
        query = sign(common_params("ListFlows", "AKA"), {}, "POST", KEYS["AKA"][0])
        del query[name]
        body = check_error(*await post(client, "/?" + encode(query), ""), "MissingRequiredParams", 400)
        assert body["Message"] == f"The HTTP query '{name}' must be specified."


async def test_a_replayed_nonce_is_refused_within_the_window(client: TestClient, r: Any) -> None:
    path, form = signed_request("ListFlows")
    status, _, text = await post(client, path, form)
    assert status == 200, text
    body = check_error(*await post(client, path, form), "SignatureNonceUsed", 400)
    assert "nonce" in body["Message"]
    # The guard lives in Redis (shared by every front door) only as long as the window needs it.
    nonce = dict(p.split("=", 1) for p in path[2:].split("&"))["SignatureNonce"]
    ttl = r.pttl(keys.signature_nonce("AKA", nonce, ACCOUNT_A))  # in a slot of its own (issue 17)
    assert 14 * 60 * 1000 < ttl <= 16 * 60 * 1000
    # The same nonce under another key is that key's own first use.
    other_path, other_form = signed_request("ListFlows", key_id="AKB", SignatureNonce=nonce)
    assert (await post(client, other_path, other_form))[0] == 200
    # A request that fails its signature does not spend the nonce.
    bad_path, bad_form = signed_request("ListFlows", secret="wrong")
    check_error(*await post(client, bad_path, bad_form), "SignatureNotMatch", 403)
    nonce2 = dict(p.split("=", 1) for p in bad_path[2:].split("&"))["SignatureNonce"]
    assert (await post(client, *signed_request("ListFlows", SignatureNonce=nonce2)))[0] == 200


async def test_policies_through_the_app(client: TestClient) -> None:
    for name in ("orders-1", "billing", "secret-x", "public-x"):
        status, _, text = await post(client, *signed_request("CreateFlow", {"Name": name, "Definition": PASS_FLOW.format(name=name)}))
        assert status == 200, text
    # AKORDERS: StartExecution and Describe* on flow/orders-* only.
    assert (await post(client, *signed_request("DescribeFlow", {"Name": "orders-1"}, key_id="AKORDERS")))[0] == 200
    assert (await post(client, *signed_request("StartExecution", {"FlowName": "orders-1"}, key_id="AKORDERS")))[0] == 200
    for action, params in [
        ("DescribeFlow", {"Name": "billing"}),
        ("StartExecution", {"FlowName": "billing"}),
        ("DeleteFlow", {"Name": "orders-1"}),
        ("ListFlows", {}),
    ]:
        body = check_error(*await post(client, *signed_request(action, params, key_id="AKORDERS")), "AccessDenied", 403)
        assert body["Message"] == "The resources doesn't belong to you."
    # AKDENY: everything, but DescribeFlow on flow/secret-* is explicitly denied.
    assert (await post(client, *signed_request("DescribeFlow", {"Name": "public-x"}, key_id="AKDENY")))[0] == 200
    check_error(*await post(client, *signed_request("DescribeFlow", {"Name": "secret-x"}, key_id="AKDENY")), "AccessDenied", 403)
    assert (await post(client, *signed_request("ListFlows", key_id="AKDENY")))[0] == 200
    # AKNONE: an empty policy allows nothing.
    check_error(*await post(client, *signed_request("ListFlows", key_id="AKNONE")), "AccessDenied", 403)
    # The policy is checked before the parameters: a denied caller learns nothing about them.
    check_error(*await post(client, *signed_request("DescribeExecution", {}, key_id="AKNONE")), "AccessDenied", 403)


async def test_tenancy_same_names_in_two_accounts(client: TestClient) -> None:
    a_def, b_def = PASS_FLOW.format(name="shared"), PASS_FLOW.format(name="shared") + "# account B\n"
    assert (await post(client, *signed_request("CreateFlow", {"Name": "shared", "Definition": a_def}, key_id="AKA")))[0] == 200
    check_error(*await post(client, *signed_request("DescribeFlow", {"Name": "shared"}, key_id="AKB")), "FlowNotExists", 404)
    assert (await post(client, *signed_request("CreateFlow", {"Name": "shared", "Definition": b_def}, key_id="AKB")))[0] == 200
    _, _, text = await post(client, *signed_request("DescribeFlow", {"Name": "shared"}, key_id="AKB"))
    assert json.loads(text)["Definition"] == b_def
    _, _, text = await post(client, *signed_request("DescribeFlow", {"Name": "shared"}, key_id="AKA"))
    assert json.loads(text)["Definition"] == a_def


async def test_credentials_file_changes_apply_without_restart(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    settings = make_settings(redis_server, tmp_path)
    client = await aiohttp_client(make_app(settings))
    keyring = client.server.app[KEYRING]
    assert (await post(client, *signed_request("ListFlows", key_id="AKA")))[0] == 200
    new_key = ("AKNEW", ("secret-new-0123456", ACCOUNT_A))
    check_error(*await post(client, *signed_request("ListFlows", key_id=new_key[0], secret=new_key[1][0])), "InvalidAccessKeyID", 403)

    async def reloaded_after(write: Any) -> None:
        before = keyring.reloads
        write()
        for _ in range(200):  # the watcher polls every 50 ms here; wait for its reload, not for a time
            if keyring.reloads > before:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the credentials file was not reloaded")

    doc = credentials_doc({new_key[0]: new_key[1]})
    del doc["accounts"][0]["access_keys"][0]  # AKA leaves
    await reloaded_after(lambda: settings.credentials.write_text(yaml.safe_dump(doc)))  # type: ignore[union-attr]
    assert (await post(client, *signed_request("ListFlows", key_id="AKNEW", secret=new_key[1][0])))[0] == 200
    check_error(*await post(client, *signed_request("ListFlows", key_id="AKA")), "InvalidAccessKeyID", 403)

    # A broken file is reported and ignored: the keys in force stay.
    reloads = keyring.reloads
    settings.credentials.write_text("accounts: [ {id: 1, access_keys: [ {id: X} ] } ]")  # type: ignore[union-attr]
    assert not await keyring.reload_if_changed()  # the watcher's own look at the file, taken here rather than waited for
    assert keyring.reloads == reloads
    assert (await post(client, *signed_request("ListFlows", key_id="AKNEW", secret=new_key[1][0])))[0] == 200


def acs3_headers(method: str, query: dict[str, str], body: bytes, ctype: str | None, action: str, key_id: str, secret: str, host: str) -> dict[str, str]:
    """Headers of an ACS3-HMAC-SHA256 request, signed by the published algorithm written out here."""
    import uuid

    def enc(s: str) -> str:
        return quote(s, safe="-_.~")

    headers = {
        "host": host, "x-acs-action": action, "x-acs-version": "2019-03-15", "x-acs-date": timestamp(),
        "x-acs-signature-nonce": uuid.uuid4().hex, "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }  # fmt: skip
    if ctype:
        headers["content-type"] = ctype
    names = sorted(headers)
    canonical = "\n".join(
        [
            method, "/", "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query.items())),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names), ";".join(names), hashlib.sha256(body).hexdigest(),
        ]
    )  # fmt: skip
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(names)},Signature={sig}"
    return headers


async def test_acs3_requests_through_the_app(client: TestClient) -> None:
    host = f"{client.server.host}:{client.server.port}"
    body = encode({"Name": "acs3_flow", "Definition": PASS_FLOW.format(name="acs3_flow")}).encode()
    headers = acs3_headers("POST", {}, body, "application/x-www-form-urlencoded", "CreateFlow", "AKA", KEYS["AKA"][0], host)
    resp = await client.post("/", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    query = {"Name": "acs3_flow"}
    headers = acs3_headers("GET", query, b"", None, "DescribeFlow", "AKA", KEYS["AKA"][0], host)
    resp = await client.get("/?" + encode(query), headers=headers)
    assert resp.status == 200 and (await resp.json())["Name"] == "acs3_flow"
    # The same request again: its nonce is spent.
    resp = await client.get("/?" + encode(query), headers=headers)
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNonceUsed", 400)
    # Another account's key sees nothing; a wrong secret is caught; a missing header is named.
    headers = acs3_headers("GET", query, b"", None, "DescribeFlow", "AKB", KEYS["AKB"][0], host)
    resp = await client.get("/?" + encode(query), headers=headers)
    check_error(resp.status, resp.headers, await resp.text(), "FlowNotExists", 404)
    headers = acs3_headers("GET", query, b"", None, "DescribeFlow", "AKA", "wrong", host)
    resp = await client.get("/?" + encode(query), headers=headers)
    check_error(resp.status, resp.headers, await resp.text(), "SignatureNotMatch", 403)
    headers = acs3_headers("GET", query, b"", None, "DescribeFlow", "AKA", KEYS["AKA"][0], host)
    del headers["x-acs-date"]
    resp = await client.get("/?" + encode(query), headers=headers)
    body_json = check_error(resp.status, resp.headers, await resp.text(), "MissingRequiredHeader", 400)
    assert "x-acs-date" in body_json["Message"]


def test_openfnf_dev_keeps_what_was_added_to_its_credentials_file(tmp_path: Path) -> None:
    """`openfnf dev` writes its key once; accounts and policies added to the file survive its restarts."""
    from api.credentials import read_credentials_file
    from openfnf.dev import DevOptions, ensure_credentials

    key_id, secret, path = ensure_credentials(DevOptions(data_dir=tmp_path))
    doc = yaml.safe_load(path.read_text())
    doc["accounts"].append({"id": "999", "access_keys": [{"id": "AKEXTRA", "secret": "s", "policy": []}]})
    path.write_text(yaml.safe_dump(doc))
    assert ensure_credentials(DevOptions(data_dir=tmp_path))[:2] == (key_id, secret)
    keys_now = read_credentials_file(path)
    assert keys_now[key_id].secret == secret and keys_now["AKEXTRA"].policy == ()
    # Another dev key given on the command line replaces the file's first key, as before.
    assert ensure_credentials(DevOptions(data_dir=tmp_path, access_key_id="AKCLI", access_key_secret="x"))[:2] == ("AKCLI", "x")
    assert set(read_credentials_file(path)) == {"AKCLI"}
