"""Signature v1 (spec 2.2) on parsed requests, no I/O: the SDKs' signatures pass, every documented failure is named."""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from alibabacloud_tea_openapi.utils import Utils

from api.auth import verify_v1
from api.credentials import AccessKey
from api.protocol import RpcRequest
from common.errors import FnfError
from common.timefmt import parse_rfc3339

KEYRING = {
    "AKID": AccessKey("AKID", "s3cr3t/+=", "123"),
    "OFF": AccessKey("OFF", "x", "123", enabled=False),
}
NOW_TEXT = "2026-11-21T16:19:03Z"
NOW = parse_rfc3339(NOW_TEXT)
SKEW = 15 * 60


def spec_signature(params: dict[str, str], method: str, secret: str) -> str:
    """Spec 2.2, written out again here: sorted pct(k)=pct(v), METHOD&%2F&pct(canon), HMAC-SHA1(secret&)."""

    def pct(s: str) -> str:
        return quote(s, safe="~")

    canon = "&".join(pct(k) + "=" + pct(v) for k, v in sorted(params.items()) if k != "Signature")
    sts = method + "&" + pct("/") + "&" + pct(canon)
    return base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()


def request(method: str = "POST", query: dict[str, str] | None = None, form: dict[str, str] | None = None, signer: Any = None, secret: str = "s3cr3t/+=") -> RpcRequest:
    q = {
        "Action": "StartExecution", "Format": "json", "Version": "2019-03-15", "Timestamp": NOW_TEXT,
        "SignatureNonce": uuid.uuid4().hex, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "AccessKeyId": "AKID",
    }  # fmt: skip
    q.update(query or {})
    form = form or {}
    sign = signer or Utils.get_rpcsignature
    if "Signature" not in q:
        q["Signature"] = sign({**q, **form}, method, secret)
    return RpcRequest(action=q.get("Action", ""), method=method, query=q, form=form, params={**q, **form})


TRICKY = {"Input": '{"a": "x&y=z", "b": "中文 ~*+/"}', "ExecutionName": "e-1_x", "FlowName": "f", "Empty": ""}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("signer", [Utils.get_rpcsignature, spec_signature], ids=["new_sdk_signer", "spec_text"])
def test_signatures_computed_by_the_sdk_and_by_the_spec_text_verify(method: str, signer: Any) -> None:
    form = {} if method == "GET" else TRICKY
    query = TRICKY if method == "GET" else {}
    req = request(method, query, form, signer=signer)
    assert verify_v1(req, KEYRING, NOW, SKEW).key.id == "AKID"


def test_old_sdk_signer_verifies() -> None:
    from aliyunsdkcore.auth.algorithm import sha_hmac1
    from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

    params = {"Action": "DescribeFlow", "Name": "f", "Version": "2019-03-15", "RegionId": "cn-hangzhou", "Format": "JSON"}
    url, _ = get_signed_url(dict(params), "AKID", "s3cr3t/+=", "JSON", "GET", {}, sha_hmac1)
    from urllib.parse import parse_qsl

    query = dict(parse_qsl(url.split("?", 1)[1], keep_blank_values=True))
    req = RpcRequest(action="DescribeFlow", method="GET", query=query, form={}, params=query)
    now = parse_rfc3339(query["Timestamp"])
    assert verify_v1(req, KEYRING, now, SKEW).key.id == "AKID"


def code_of(req: RpcRequest, now: int = NOW) -> tuple[str, int, str]:
    with pytest.raises(FnfError) as info:
        verify_v1(req, KEYRING, now, SKEW)
    return info.value.code, info.value.http_status, info.value.message


@pytest.mark.parametrize("name", ["AccessKeyId", "Signature", "Timestamp", "SignatureNonce"])
def test_a_missing_signature_parameter_is_named(name: str) -> None:
    req = request()
    del req.query[name]
    assert code_of(req) == ("MissingRequiredParams", 400, f"The HTTP query '{name}' must be specified.")


def test_each_documented_failure() -> None:
    assert code_of(request(secret="wrong"))[:2] == ("SignatureNotMatch", 403)
    assert code_of(request(query={"AccessKeyId": "NOPE"}))[:2] == ("InvalidAccessKeyID", 403)
    assert code_of(request(query={"AccessKeyId": "OFF"}, secret="x"))[:2] == ("InvalidAccessKeyID", 403)
    # 15 minutes either way is the window; one second more is too skewed.
    assert code_of(request(), now=NOW + SKEW * 1000 + 1000)[:2] == ("RequestTimeTooSkewed", 403)
    assert code_of(request(), now=NOW - SKEW * 1000 - 1000)[:2] == ("RequestTimeTooSkewed", 403)
    assert verify_v1(request(), KEYRING, NOW + SKEW * 1000 - 1000, SKEW)
    assert code_of(request(query={"Timestamp": "yesterday"}))[:2] == ("InvalidArgument", 400)
    assert code_of(request(query={"SignatureMethod": "HMAC-SHA256"}))[:2] == ("InvalidArgument", 400)
    assert code_of(request(query={"SignatureNonce": "n" * 129}))[:2] == ("InvalidArgument", 400)


def test_every_signed_part_is_covered() -> None:
    """Changing any signed parameter, the method, or adding one after signing breaks the signature."""
    base = request("POST", {"Extra": "1"}, {"FlowName": "f", "Input": "{}"})
    for mutate in [
        lambda r: r.form.__setitem__("FlowName", "g"),
        lambda r: r.form.__setitem__("Injected", "1"),
        lambda r: r.query.__setitem__("Extra", "2"),
        lambda r: r.query.__setitem__("Action", "DeleteFlow"),
        lambda r: setattr(r, "method", "GET"),
    ]:
        req = RpcRequest(action=base.action, method=base.method, query=dict(base.query), form=dict(base.form))
        mutate(req)
        assert code_of(req)[0] == "SignatureNotMatch"
    assert verify_v1(base, KEYRING, NOW, SKEW)


def test_a_signature_of_any_characters_is_a_mismatch_not_a_crash() -> None:
    for value in ["é", "\udcff", "中文=="]:
        assert code_of(request(query={"Signature": value}))[0] == "SignatureNotMatch"
