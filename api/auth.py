"""Who signed a request: signature v1 (HMAC-SHA1 over the sorted parameters) or ACS3-HMAC-SHA256.

Both are verified in constant time, both carry a time (`Timestamp` / `x-acs-date`) that must be
within `timestamp_skew_seconds` of the server clock, and both carry a nonce (`SignatureNonce` /
`x-acs-signature-nonce`) that an access key may use once within that window.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, quote

from api.credentials import AccessKey
from api.protocol import ACS3 as ACS3_KIND
from api.protocol import RpcRequest, signature_kind
from common.errors import (
    InvalidAccessKeyID,
    InvalidArgument,
    MissingRequiredHeader,
    MissingRequiredParams,
    RequestTimeTooSkewed,
    SignatureNotMatch,
)
from common.timefmt import parse_rfc3339

logger = logging.getLogger(__name__)

ACS3 = "ACS3-HMAC-SHA256"
MAX_NONCE_CHARS = 128
# Headers an ACS3 request must have signed (besides every x-acs-* header it sends, and content-type with a body).
ACS3_SIGNED = ("host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256")
_AUTH_RE = re.compile(r"^ACS3-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]*)\s*,\s*Signature=([0-9a-fA-F]+)\s*$")


class KeyLookup(Protocol):
    """Where access keys are found (api.credentials.Keyring, or a plain dict in tests)."""

    def get(self, key_id: str) -> AccessKey | None: ...


@dataclass(frozen=True)
class Verified:
    """A request whose signature checks out: the key, and the nonce it must not have used before."""

    key: AccessKey
    nonce: str
    signed_at_ms: int


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch  # what pct() leaves as it is


def pct(text: str) -> str:
    """RFC 3986 percent-encoding as the SDKs sign: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    if _UNRESERVED(text):  # most names and values (quote() is slow even when it changes nothing)
        return text
    return quote(text, safe="~")


def signature_v1(params: Mapping[str, str], method: str, secret: str) -> str:
    """The Signature the SDK computes for these parameters (Signature itself excluded)."""
    canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()) if k != "Signature")
    # pct(canon): its parts are encoded already, so only `%`, `=` and `&` change (`%` first).
    encoded = canon.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    string_to_sign = f"{method}&%2F&{encoded}"
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings of any characters (compare_digest on str takes ASCII only)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def _key(keyring: KeyLookup, key_id: str) -> AccessKey:
    key = keyring.get(key_id)
    if key is None or not key.enabled:
        logger.info("refused access key %s: %s", key_id[:64], "unknown" if key is None else "disabled")
        raise InvalidAccessKeyID(key_id[:64])
    return key


def _time(text: str, name: str, now_ms: int, skew_seconds: int) -> int:
    try:
        sent_at = parse_rfc3339(text)
    except (ValueError, OverflowError):
        raise InvalidArgument(message=f"{name} '{text[:64]}' is not a UTC time such as 2019-01-01T01:01:01Z.") from None
    if abs(now_ms - sent_at) > skew_seconds * 1000:
        raise RequestTimeTooSkewed(text[:64])
    return sent_at


def _nonce(text: str, name: str) -> str:
    if len(text) > MAX_NONCE_CHARS:
        raise InvalidArgument(message=f"{name} must be at most {MAX_NONCE_CHARS} characters long.")
    return text


def verify_v1(req: RpcRequest, keyring: KeyLookup, now_ms: int, skew_seconds: int) -> Verified:
    """Check a signature-v1 request (query + body parameters, HMAC-SHA1)."""
    signed = {**req.query, **req.form}
    for name in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce"):
        if not signed.get(name):
            raise MissingRequiredParams(name)
    method = signed.get("SignatureMethod", "HMAC-SHA1")
    if method != "HMAC-SHA1":
        raise InvalidArgument(message=f"SignatureMethod '{method[:40]}' is not supported; sign with HMAC-SHA1.")
    key = _key(keyring, signed["AccessKeyId"])
    sent_at = _time(signed["Timestamp"], "Timestamp", now_ms, skew_seconds)
    nonce = _nonce(signed["SignatureNonce"], "SignatureNonce")
    expected = signature_v1(signed, req.method, key.secret)
    if not _same(expected, signed["Signature"]):
        logger.info("signature v1 mismatch for access key %s", key.id)
        raise SignatureNotMatch()
    return Verified(key, nonce, sent_at)


def _canonical_query(raw_query: str) -> str:
    """ACS3 CanonicalQueryString: names and values percent-encoded (RFC 3986), sorted by name, `&`-joined."""
    pairs: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        pairs.setdefault(name, value)  # as protocol.py reads parameters: the first occurrence counts
    return "&".join(f"{k}={v}" for k, v in sorted((pct(k), pct(v)) for k, v in pairs.items()))


def verify_acs3(req: RpcRequest, authorization: str, keyring: KeyLookup, now_ms: int, skew_seconds: int) -> Verified:
    """Check an ACS3-HMAC-SHA256 request (Authorization header over method, path, query, headers, body hash)."""
    headers = req.headers
    for name in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
        if not headers.get(name):
            raise MissingRequiredHeader(name)
    match = _AUTH_RE.match(authorization)
    if match is None:
        algorithm = authorization.split(" ", 1)[0][:40]
        if algorithm != ACS3:
            raise InvalidArgument(message=f"Authorization algorithm '{algorithm}' is not supported; sign with {ACS3}.")
        raise InvalidArgument(message="Authorization must read 'ACS3-HMAC-SHA256 Credential=...,SignedHeaders=...,Signature=...'.")
    key_id, signed_list, signature = match.groups()
    key = _key(keyring, key_id)
    sent_at = _time(headers["x-acs-date"], "x-acs-date", now_ms, skew_seconds)
    nonce = _nonce(headers["x-acs-signature-nonce"], "x-acs-signature-nonce")
    names = [n.strip().lower() for n in signed_list.split(";") if n.strip()]
    required = set(ACS3_SIGNED) | {h.lower() for h in headers if h.lower().startswith("x-acs-")}
    if req.body and "content-type" in headers:
        required.add("content-type")
    unsigned = sorted(required - set(names))
    if unsigned:
        raise SignatureNotMatch(message=f"The request signature does not cover the header(s) {', '.join(unsigned)}; sign every x-acs-* header, host and content-type.")
    payload_hash = hashlib.sha256(req.body).hexdigest()
    if not _same(payload_hash, headers["x-acs-content-sha256"].strip().lower()):
        raise SignatureNotMatch(message="x-acs-content-sha256 is not the SHA-256 of the request body.")
    canonical_headers = "".join(f"{n}:{_header_value(headers, n)}\n" for n in names)
    canonical_request = "\n".join(
        [req.method, req.path or "/", _canonical_query(req.raw_query), canonical_headers, ";".join(names), payload_hash]
    )
    # Header values arrive decoded with surrogateescape: encoding them back gives the bytes the client signed.
    string_to_sign = f"{ACS3}\n{hashlib.sha256(canonical_request.encode('utf-8', 'surrogateescape')).hexdigest()}"
    expected = hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not _same(expected, signature.lower()):
        logger.info("signature ACS3 mismatch for access key %s", key.id)
        raise SignatureNotMatch()
    return Verified(key, nonce, sent_at)


def _header_value(headers: Mapping[str, str], name: str) -> str:
    getall = getattr(headers, "getall", None)
    values = getall(name, []) if getall is not None else ([headers[name]] if name in headers else [])
    if not values:
        raise SignatureNotMatch(message=f"The signed header {name} is not in the request.")
    return ",".join(sorted(v.strip() for v in values))


def verify(req: RpcRequest, keyring: KeyLookup, now_ms: int, skew_seconds: int) -> Verified:
    """The access key that signed this request and its nonce, or the documented error (CPU only).

    The nonce is spent next, in the request's admission round trip (api/admission.py).
    """
    if signature_kind(req.query, req.form, req.headers) == ACS3_KIND:  # the rule parse_request chose the action by
        return verify_acs3(req, req.headers["Authorization"], keyring, now_ms, skew_seconds)
    return verify_v1(req, keyring, now_ms, skew_seconds)
