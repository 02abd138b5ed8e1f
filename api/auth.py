"""Signature v1 (HMAC-SHA1 over the sorted query and form parameters), verified in constant time."""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from api.credentials import AccessKey
from api.protocol import RpcRequest
from common.errors import InvalidAccessKeyID, MissingRequiredParams, RequestTimeTooSkewed, SignatureNotMatch
from common.timefmt import parse_rfc3339


def pct(text: str) -> str:
    """RFC 3986 percent-encoding as the SDKs sign: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(text, safe="~")


def signature_v1(params: dict[str, str], method: str, secret: str) -> str:
    """The Signature the SDK computes for these parameters (Signature itself excluded)."""
    canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()) if k != "Signature")
    string_to_sign = f"{method}&{pct('/')}&{pct(canon)}"
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def authenticate(req: RpcRequest, keys: dict[str, AccessKey], now_ms: int, skew_seconds: int) -> AccessKey:
    """The access key that signed this request, or the documented error."""
    signed = {**req.query, **req.form}
    for name in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce"):
        if not signed.get(name):
            raise MissingRequiredParams(name)
    key = keys.get(signed["AccessKeyId"])
    if key is None or not key.enabled:
        raise InvalidAccessKeyID(signed["AccessKeyId"])
    try:
        sent_at = parse_rfc3339(signed["Timestamp"])
    except ValueError:
        raise RequestTimeTooSkewed(signed["Timestamp"]) from None
    if abs(now_ms - sent_at) > skew_seconds * 1000:
        raise RequestTimeTooSkewed(signed["Timestamp"])
    expected = signature_v1(signed, req.method, key.secret)
    if not hmac.compare_digest(expected.encode(), signed["Signature"].encode()):
        raise SignatureNotMatch()
    return key
