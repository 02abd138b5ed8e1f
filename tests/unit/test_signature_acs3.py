"""ACS3-HMAC-SHA256 against vectors computed here from the published V3 algorithm, and cross-checked with the SDK.

The published algorithm (Alibaba Cloud "V3 request structure and signature"):
  CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQueryString \\n CanonicalHeaders \\n SignedHeaders \\n HashedRequestPayload
  - CanonicalQueryString: each name and value RFC 3986 percent-encoded (space %20, * %2A, ~ kept),
    sorted by name, joined `name=value` with `&` (`name=` for an empty value).
  - CanonicalHeaders: for host, content-type and every x-acs-* header: `lowercase-name:trimmed-value\\n`,
    sorted by name. SignedHeaders: those names joined with `;`.
  - HashedRequestPayload: lowercase hex SHA-256 of the body (of "" when there is none) = x-acs-content-sha256.
  StringToSign = "ACS3-HMAC-SHA256\\n" + hex(SHA-256(CanonicalRequest))
  Signature = hex(HMAC-SHA256(AccessKeySecret, StringToSign))
  Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<...>,Signature=<...>
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote

import pytest
from multidict import CIMultiDict

from api.auth import verify_acs3
from api.credentials import AccessKey
from api.protocol import RpcRequest
from common.errors import FnfError
from common.timefmt import parse_rfc3339

KEY_ID, SECRET = "LTAI5tVectorKey", "VectorSecret+/="
KEYRING = {KEY_ID: AccessKey(KEY_ID, SECRET, "123")}
DATE = "2026-11-21T16:19:03Z"
NOW = parse_rfc3339(DATE)


def enc(s: str) -> str:
    return quote(s, safe="-_.~")


def published_acs3(method: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> str:
    """The Authorization header, step by step as the algorithm text says (independent of api/auth.py)."""
    cqs = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query.items()))
    signed = {k.lower(): v.strip() for k, v in headers.items() if k.lower() in ("host", "content-type") or k.lower().startswith("x-acs-")}
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    payload = hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join([method, "/", cqs, canonical_headers, ";".join(names), payload])
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    signature = hmac.new(SECRET.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders={';'.join(names)},Signature={signature}"


def sdk_acs3(method: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> str:
    """The same header as the official tea-openapi SDK computes it (a second, independent implementation)."""
    from alibabacloud_tea_openapi.utils import Utils

    class Req:
        pass

    req: Any = Req()
    req.pathname, req.method, req.query, req.headers = "/", method, dict(query), dict(headers)
    return str(Utils.get_authorization(req, "ACS3-HMAC-SHA256", hashlib.sha256(body).hexdigest(), KEY_ID, SECRET))


def base_headers(action: str, body: bytes, ctype: str | None) -> dict[str, str]:
    headers = {
        "host": "127.0.0.1:8080", "x-acs-action": action, "x-acs-version": "2019-03-15", "x-acs-date": DATE,
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d", "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }  # fmt: skip
    if ctype:
        headers["content-type"] = ctype
    return headers


CASES = [
    ("GET", {"Name": "orders-1", "Limit": "10"}, b"", None),
    ("GET", {"FlowName": "f", "ExecutionNamePrefix": "a b*c~d+e/f", "Status": "中文"}, b"", None),
    ("GET", {}, b"", None),
    ("POST", {}, b"FlowName=f&ExecutionName=e1&Input=%7B%22a%22%3A1%7D", "application/x-www-form-urlencoded"),
    ("POST", {"FlowName": "f"}, b'{"ExecutionName": "e2"}', "application/json; charset=utf-8"),
]


def to_request(method: str, query: dict[str, str], headers: dict[str, str], body: bytes, authorization: str) -> RpcRequest:
    raw_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in query.items())
    all_headers = CIMultiDict(headers)
    all_headers["Authorization"] = authorization
    all_headers["User-Agent"] = "not signed, not required"
    return RpcRequest(action=headers["x-acs-action"], method=method, query=dict(query), form={}, headers=all_headers, raw_query=raw_query, body=body)


@pytest.mark.parametrize("method, query, body, ctype", CASES)
def test_the_published_algorithm_and_the_sdk_agree_and_verify(method: str, query: dict[str, str], body: bytes, ctype: str | None) -> None:
    headers = base_headers("StartExecution", body, ctype)
    ours = published_acs3(method, query, headers, body)
    assert ours == sdk_acs3(method, query, headers, body)  # the vector is what a real client sends
    verified = verify_acs3(to_request(method, query, headers, body, ours), ours, KEYRING, NOW, 900)
    assert verified.key.id == KEY_ID and verified.nonce == "3156853299f313e23d1673dc12e1703d"


def test_a_fixed_vector() -> None:
    """One vector written down (computed once by the algorithm above), so a drift on either side shows."""
    headers = base_headers("DescribeFlow", b"", None)
    assert headers["x-acs-content-sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    expected = (
        "ACS3-HMAC-SHA256 Credential=LTAI5tVectorKey,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=1bc0f6421af436591cd34e192dd1019846d84face913ac1933cc8443fdafa247"
    )
    assert published_acs3("GET", {"Name": "orders-1"}, headers, b"") == expected
    assert verify_acs3(to_request("GET", {"Name": "orders-1"}, headers, b"", expected), expected, KEYRING, NOW, 900)
    wrong = expected[:-1] + "8"
    assert failure(to_request("GET", {"Name": "orders-1"}, headers, b"", wrong), wrong) == ("SignatureNotMatch", 403)


def failure(req: RpcRequest, auth: str, now: int = NOW) -> tuple[str, int]:
    with pytest.raises(FnfError) as info:
        verify_acs3(req, auth, KEYRING, now, 900)
    return info.value.code, info.value.http_status


def test_tampering_with_any_signed_part_is_signature_not_match() -> None:
    method, query, body, ctype = CASES[3]
    headers = base_headers("StartExecution", body, ctype)
    auth = published_acs3(method, {"Q": "1"}, headers, body)
    good = to_request(method, {"Q": "1"}, headers, body, auth)
    assert verify_acs3(good, auth, KEYRING, NOW, 900)
    tampered = [
        to_request("PUT", {"Q": "1"}, headers, body, auth),
        to_request(method, {"Q": "2"}, headers, body, auth),
        to_request(method, {"Q": "1", "R": "1"}, headers, body, auth),
        to_request(method, {"Q": "1"}, {**headers, "x-acs-action": "DeleteFlow"}, body, auth),
        to_request(method, {"Q": "1"}, {**headers, "host": "evil"}, body, auth),
        to_request(method, {"Q": "1"}, headers, body + b"&Extra=1", auth),  # body no longer matches its hash
        to_request(method, {"Q": "1"}, {**headers, "x-acs-content-sha256": hashlib.sha256(b"x").hexdigest()}, b"x", auth),
    ]
    for req in tampered:
        assert failure(req, auth) == ("SignatureNotMatch", 403)
    wrong_sig = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    assert failure(good, wrong_sig) == ("SignatureNotMatch", 403)


def test_required_headers_must_be_signed() -> None:
    headers = base_headers("ListFlows", b"", None)
    auth = published_acs3("GET", {}, headers, b"")
    # Claim a SignedHeaders list without x-acs-date: the signature may be right for it, but it is refused.
    sig = auth.rsplit("=", 1)[1]
    partial = f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=host;x-acs-action,Signature={sig}"
    assert failure(to_request("GET", {}, headers, b"", partial), partial) == ("SignatureNotMatch", 403)
    # An x-acs-* header sent but not signed is refused too.
    extra = {**headers, "x-acs-extra": "1"}
    assert failure(to_request("GET", {}, extra, b"", auth), auth) == ("SignatureNotMatch", 403)


@pytest.mark.parametrize("header", ["x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"])
def test_a_missing_acs3_header_is_missing_required_header(header: str) -> None:
    headers = base_headers("ListFlows", b"", None)
    auth = published_acs3("GET", {}, headers, b"")
    del headers[header]
    assert failure(to_request("GET", {}, headers, b"", auth), auth) == ("MissingRequiredHeader", 400)


def test_key_time_and_algorithm_failures() -> None:
    headers = base_headers("ListFlows", b"", None)
    auth = published_acs3("GET", {}, headers, b"")
    req = to_request("GET", {}, headers, b"", auth)
    assert failure(req, auth, now=NOW + 901_000) == ("RequestTimeTooSkewed", 403)
    unknown = auth.replace(KEY_ID, "LTAIunknown")
    assert failure(to_request("GET", {}, headers, b"", unknown), unknown) == ("InvalidAccessKeyID", 403)
    sm3 = auth.replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3", 1)
    assert failure(to_request("GET", {}, headers, b"", sm3), sm3) == ("InvalidArgument", 400)


def test_a_signed_content_hash_that_is_not_the_bodys_is_refused() -> None:
    """x-acs-content-sha256 must be the body's SHA-256, even when the client signed the wrong value."""
    body = b"FlowName=f"
    headers = {**base_headers("StartExecution", body, "application/x-www-form-urlencoded"), "x-acs-content-sha256": "0" * 64}
    auth = published_acs3("POST", {}, headers, body)  # signed over the wrong header and the real body hash
    assert failure(to_request("POST", {}, headers, body, auth), auth) == ("SignatureNotMatch", 403)


@pytest.mark.parametrize("value", ["éé", "\udcff", "%E9"])
def test_header_values_of_any_characters_are_a_mismatch_not_a_crash(value: str) -> None:
    """aiohttp hands over undecodable header bytes as surrogates; they must fail the check, not the server."""
    auth = f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version;x-acs-odd,Signature=00"
    headers = {**base_headers("ListFlows", b"", None), "x-acs-content-sha256": value}
    assert failure(to_request("GET", {}, headers, b"", auth), auth) == ("SignatureNotMatch", 403)
    headers = {**base_headers("ListFlows", b"", None), "x-acs-odd": value}
    assert failure(to_request("GET", {}, headers, b"", auth), auth) == ("SignatureNotMatch", 403)
