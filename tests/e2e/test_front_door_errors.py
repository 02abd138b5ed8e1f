"""Every front-door error code of the spec's catalogue (2.4, common codes), with its exact HTTP status,
through raw HTTP and through the official `alibabacloud_fnf20190315` SDK (which must surface code and status).

The app runs in process on a real port (its own event loop in a thread) with the fixture's redis-server,
so one test can also make a handler fail the way a bug would (500).
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models
from alibabacloud_tea_openapi import utils_models as open_api_models
from darabonba.runtime import ExtendsParameters, RuntimeOptions
from Tea.exceptions import TeaException

from api.actions import HANDLERS
from api.app import make_app
from tests.conftest import new_sdk_client
from tests.frontdoor import KEYS, check_error, common_params, encode, serve_in_thread, sign, signed_request, timestamp
from tests.integration.test_front_door_protocol import make_settings

pytestmark = pytest.mark.e2e

THROTTLE_RULES = "rules:\n  - {action: ListFlows, rate: 0.001, burst: 1, scope: access_key, target: AKTHROTTLED}\n"


@pytest.fixture(scope="module")
def port(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "throttle.yaml").write_text(THROTTLE_RULES)
    settings = make_settings(redis_server, tmp, throttle_file=tmp / "throttle.yaml")
    with serve_in_thread(make_app(settings)) as p:
        yield p


# ------------------------------------------------------------------ raw HTTP


def raw(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read().decode()
    finally:
        conn.close()


def raw_signed(port: int, action: str, body: dict[str, str] | None = None, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any, str]:
    path, form = signed_request(action, body, **kw)
    return raw(port, "POST", path, form.encode(), headers)


def raw_acs3_without_date(port: int) -> tuple[int, Any, str]:
    headers = {
        "x-acs-action": "ListFlows", "x-acs-version": "2019-03-15", "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        "Authorization": "ACS3-HMAC-SHA256 Credential=AKA,SignedHeaders=host;x-acs-action,Signature=00",
    }  # fmt: skip
    return raw(port, "GET", "/", headers=headers)


def raw_throttled(port: int) -> tuple[int, Any, str]:
    for _ in range(3):  # the bucket holds one request; the next is refused
        status, headers, text = raw_signed(port, "ListFlows", key_id="AKTHROTTLED")
        if status != 200:
            assert int(headers["x-acs-retry-after"]) > 0
            return status, headers, text
    raise AssertionError("never throttled")


RAW: dict[str, Callable[[int], tuple[int, Any, str]]] = {
    "ActionNotSupported": lambda p: raw_signed(p, "NoSuchAction"),
    "APIVersionNotSupported": lambda p: raw_signed(p, "ListFlows", Version="2018-01-01"),
    "EntityTooLarge": lambda p: raw_signed(p, "StartExecution", {"FlowName": "f", "Input": "x" * (1024 * 1024)}),
    "InvalidArgument": lambda p: raw_signed(p, "ListFlows", {"Limit": "5000"}),
    "MissingRequiredHeader": raw_acs3_without_date,
    "MissingRequiredParams": lambda p: raw_signed(p, "DescribeFlow", {}),
    "AccessDenied": lambda p: raw_signed(p, "ListFlows", key_id="AKNONE"),
    "InvalidAccessKeyID": lambda p: raw_signed(p, "ListFlows", key_id="AKWHO", secret="x"),
    "RequestTimeTooSkewed": lambda p: raw_signed(p, "ListFlows", Timestamp=timestamp(-3600)),
    "SignatureNotMatch": lambda p: raw_signed(p, "ListFlows", secret="not-the-secret"),
    "PreconditionFailed": lambda p: raw_signed(p, "ListFlows", headers={"If-Match": '"v1"'}),
    "UnsupportedMediaType": lambda p: raw_signed(p, "ListFlows", {"Limit": "5"}, headers={"Content-Type": "text/plain"}),
    "ResourceThrottled": raw_throttled,
    "InternalServerError": lambda p: raw_signed(p, "DescribeRegions"),
}

# ------------------------------------------------------------------ the official SDK


def client(port: int, key_id: str = "AKA", secret: str | None = None) -> Any:
    return new_sdk_client(f"127.0.0.1:{port}", key_id, secret if secret is not None else KEYS[key_id][0])


def acs3_client(port: int) -> Any:
    """The same SDK client, switched to its ACS3-HMAC-SHA256 signing path (what other SDK generations send)."""
    c = client(port)
    c._signature_algorithm = "ACS3-HMAC-SHA256"
    return c


def runtime(headers: dict[str, str] | None = None, queries: dict[str, str] | None = None) -> RuntimeOptions:
    return RuntimeOptions(extends_parameters=ExtendsParameters(headers=headers, queries=queries))


def rpc(c: Any, action: str, version: str = "2019-03-15") -> Any:
    return c.do_rpcrequest(action, version, "HTTP", "POST", "AK", "json", open_api_models.OpenApiRequest(), RuntimeOptions())


def sdk_octet_stream(port: int) -> Any:
    params = open_api_models.Params(
        action="ListFlows", version="2019-03-15", protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )  # fmt: skip
    return acs3_client(port).call_api(params, open_api_models.OpenApiRequest(stream=io.BytesIO(b"Limit=5")), RuntimeOptions())


def sdk_throttled(port: int) -> Any:
    c = client(port, "AKTHROTTLED")
    for _ in range(3):
        c.list_flows(models.ListFlowsRequest())
    raise AssertionError("never throttled")


SDK: dict[str, Callable[[int], Any]] = {
    "ActionNotSupported": lambda p: rpc(client(p), "NoSuchAction"),
    "APIVersionNotSupported": lambda p: rpc(client(p), "ListFlows", version="2018-01-01"),
    "EntityTooLarge": lambda p: client(p).start_execution(models.StartExecutionRequest(flow_name="f", input="x" * (1024 * 1024))),
    "InvalidArgument": lambda p: client(p).list_flows(models.ListFlowsRequest(limit=5000)),
    "MissingRequiredHeader": lambda p: acs3_client(p).list_flows_with_options(models.ListFlowsRequest(), runtime(headers={"x-acs-date": ""})),
    "MissingRequiredParams": lambda p: client(p).describe_flow(models.DescribeFlowRequest()),
    "AccessDenied": lambda p: client(p, "AKNONE").list_flows(models.ListFlowsRequest()),
    "InvalidAccessKeyID": lambda p: client(p, "AKWHO", "x").list_flows(models.ListFlowsRequest()),
    "RequestTimeTooSkewed": lambda p: client(p).list_flows_with_options(models.ListFlowsRequest(), runtime(queries={"Timestamp": timestamp(-3600)})),
    "SignatureNotMatch": lambda p: client(p, "AKA", "not-the-secret").list_flows(models.ListFlowsRequest()),
    "PreconditionFailed": lambda p: client(p).list_flows_with_options(models.ListFlowsRequest(), runtime(headers={"If-Match": '"v1"'})),
    "UnsupportedMediaType": sdk_octet_stream,
    "ResourceThrottled": sdk_throttled,
    "InternalServerError": lambda p: client(p).describe_regions(models.DescribeRegionsRequest()),
}

# Spec 2.4, common codes: code -> HTTP status.
CATALOGUE = {
    "ActionNotSupported": 400, "APIVersionNotSupported": 400, "EntityTooLarge": 400, "InvalidArgument": 400,
    "MissingRequiredHeader": 400, "MissingRequiredParams": 400, "AccessDenied": 403, "InvalidAccessKeyID": 403,
    "RequestTimeTooSkewed": 403, "SignatureNotMatch": 403, "PreconditionFailed": 412, "UnsupportedMediaType": 415,
    "ResourceThrottled": 429, "InternalServerError": 500,
}  # fmt: skip


def test_the_table_covers_the_whole_catalogue() -> None:
    assert set(RAW) == set(SDK) == set(CATALOGUE)


@pytest.fixture
def a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """DescribeRegions fails as a handler with a bug would (only InternalServerError uses it)."""

    async def broken(call: Any) -> dict[str, Any]:
        raise RuntimeError("simulated bug")

    monkeypatch.setitem(HANDLERS, "DescribeRegions", broken)


@pytest.mark.parametrize("code", list(CATALOGUE))
def test_error_code_through_raw_http_and_the_sdk(port: int, code: str, request: pytest.FixtureRequest) -> None:
    if code == "InternalServerError":
        request.getfixturevalue("a_bug")
    status = CATALOGUE[code]
    body = check_error(*RAW[code](port), code, status)
    assert body["HostId"]
    with pytest.raises(TeaException) as info:
        SDK[code](port)
    assert info.value.code == code, (info.value.code, info.value.message)
    assert info.value.statusCode == status
    assert getattr(info.value, "request_id", None) or "request id" in str(info.value.message)


def test_a_replayed_nonce_through_the_sdk(port: int) -> None:
    """Not in the catalogue (docs/compatibility.md): a nonce reused within the window is 400 SignatureNonceUsed."""
    nonce = uuid.uuid4().hex
    c = client(port)
    c.list_flows_with_options(models.ListFlowsRequest(), runtime(queries={"SignatureNonce": nonce}))
    with pytest.raises(TeaException) as info:
        c.list_flows_with_options(models.ListFlowsRequest(), runtime(queries={"SignatureNonce": nonce}))
    assert (info.value.code, info.value.statusCode) == ("SignatureNonceUsed", 400)


def test_the_sdk_acs3_path_works_end_to_end(port: int) -> None:
    """The SDK's own ACS3-HMAC-SHA256 signing (form body, then query) is accepted and scoped to the caller's account."""
    c = acs3_client(port)
    definition = "Type: StateMachine\nSpecVersion: v1\nName: acs3sdk\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
    created = c.create_flow(models.CreateFlowRequest(name="acs3sdk", definition=definition, description="", type="FDL")).body
    assert created.name == "acs3sdk"
    assert c.describe_flow(models.DescribeFlowRequest(name="acs3sdk")).body.definition == definition
    started = c.start_execution(models.StartExecutionRequest(flow_name="acs3sdk", execution_name="e1", input='{"a": 1}')).body
    assert started.name == "e1"
    assert "acs3sdk" in [f.name for f in c.list_flows(models.ListFlowsRequest()).body.flows]
    # Another account's key, same SDK path: the flow does not exist for it.
    other = client(port, "AKB")
    other._signature_algorithm = "ACS3-HMAC-SHA256"
    with pytest.raises(TeaException) as info:
        other.describe_flow(models.DescribeFlowRequest(name="acs3sdk"))
    assert (info.value.code, info.value.statusCode) == ("FlowNotExists", 404)


def test_raw_helpers_sign_like_the_sdk(port: int) -> None:
    """A guard on this file's own raw requests: a correct one succeeds (so the errors above come from the server)."""
    query = sign(common_params("ListFlows", "AKA"), {"Limit": "5"}, "POST", KEYS["AKA"][0])
    status, _, text = raw(port, "POST", "/?" + encode(query), b"Limit=5")
    assert status == 200 and "Flows" in json.loads(text)
