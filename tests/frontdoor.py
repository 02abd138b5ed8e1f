"""Helpers for the front-door tests: a credentials file with two accounts, signed requests, the error shape.

Requests are signed with the official SDK's own signer (`alibabacloud_tea_openapi.utils.Utils
.get_rpcsignature`), never with the server's function, so a server bug cannot hide behind a
matching client bug.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from aiohttp import web
from alibabacloud_tea_openapi.utils import Utils

VERSION = "2019-03-15"
ACCOUNT_A, ACCOUNT_B = "1111111111", "2222222222"
# id -> (secret, account); policies below.
KEYS: dict[str, tuple[str, str]] = {
    "AKA": ("secret-a-0123456789", ACCOUNT_A),  # account A, no policy: everything on account A
    "AKB": ("secret-b-0123456789", ACCOUNT_B),  # account B, no policy
    "AKORDERS": ("secret-orders-01234", ACCOUNT_A),  # account A: StartExecution + Describe* on flow/orders-*
    "AKDENY": ("secret-deny-0123456", ACCOUNT_A),  # account A: fnf:* but DescribeFlow denied on flow/secret-*
    "AKNONE": ("secret-none-0123456", ACCOUNT_A),  # account A: an empty policy (nothing allowed)
    "AKOFF": ("secret-off-01234567", ACCOUNT_A),  # account A, disabled
    "AKTHROTTLED": ("secret-throttled-01", ACCOUNT_B),  # account B; tests may give it a throttle rule
}
POLICIES: dict[str, Any] = {
    "AKORDERS": [{"effect": "Allow", "action": ["fnf:StartExecution", "fnf:Describe*"], "resource": ["acs:fnf:*:*:flow/orders-*"]}],
    "AKDENY": [
        {"effect": "Allow", "action": "fnf:*", "resource": "*"},
        {"effect": "Deny", "action": "fnf:DescribeFlow", "resource": "acs:fnf:*:*:flow/secret-*"},
    ],
    "AKNONE": [],
}
DISABLED = {"AKOFF"}

PASS_FLOW = "Type: StateMachine\nSpecVersion: v1\nName: {name}\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"


def credentials_doc(extra_keys: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """The credentials document of KEYS (plus `extra_keys`), grouped by account."""
    accounts: dict[str, list[dict[str, Any]]] = {}
    for key_id, (secret, account) in {**KEYS, **(extra_keys or {})}.items():
        entry: dict[str, Any] = {"id": key_id, "secret": secret, "enabled": key_id not in DISABLED}
        if key_id in POLICIES:
            entry["policy"] = POLICIES[key_id]
        accounts.setdefault(account, []).append(entry)
    return {"accounts": [{"id": a, "access_keys": ks} for a, ks in accounts.items()]}


def write_credentials(path: Path, extra_keys: dict[str, tuple[str, str]] | None = None) -> Path:
    """Write the credentials file; returns its path."""
    path.write_text(yaml.safe_dump(credentials_doc(extra_keys), sort_keys=False), encoding="utf-8")
    return path


def timestamp(offset_seconds: float = 0) -> str:
    """Now (plus an offset) as the SDKs write `Timestamp`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_seconds))


def common_params(action: str, key_id: str, **overrides: str) -> dict[str, str]:
    """The query parameters the new SDK sends with every call (before the Signature)."""
    params = {
        "Action": action, "Format": "json", "Version": VERSION, "Timestamp": timestamp(),
        "SignatureNonce": uuid.uuid4().hex, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "AccessKeyId": key_id,
    }  # fmt: skip
    params.update(overrides)
    return params


def sign(query: dict[str, str], body: dict[str, str], method: str, secret: str) -> dict[str, str]:
    """`query` plus its Signature over query and body, computed by the SDK's signer."""
    signature = Utils.get_rpcsignature({**query, **body}, method, secret)
    return {**query, "Signature": signature}


def encode(params: dict[str, str]) -> str:
    """A query string or form body encoded as the SDK does (RFC 3986)."""
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in params.items())


def signed_request(
    action: str, body: dict[str, str] | None = None, *, key_id: str = "AKA", method: str = "POST",
    query_extra: dict[str, str] | None = None, secret: str | None = None, **overrides: str,
) -> tuple[str, str]:  # fmt: skip
    """(path with query, form body) of a correctly signed call: POST params in the body, GET ones in the query."""
    body = dict(body or {})
    query = common_params(action, key_id, **overrides)
    query.update(query_extra or {})
    if method == "GET":
        query.update(body)
        body = {}
    query = sign(query, body, method, secret if secret is not None else KEYS[key_id][0])
    return "/?" + encode(query), encode(body)


FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def check_error(status: int, headers: Any, text: str, code: str, http_status: int) -> dict[str, Any]:
    """Assert the documented error shape: status, x-acs-request-id, {RequestId, HostId, Code, Message}."""
    assert status == http_status, (status, text)
    body = json.loads(text)
    assert set(body) == {"RequestId", "HostId", "Code", "Message"}, body
    assert body["Code"] == code, body
    assert body["RequestId"] and headers["x-acs-request-id"] == body["RequestId"]
    assert isinstance(body["Message"], str) and body["Message"]
    return dict(body)


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[int]:
    """Serve the real app on a real port from its own event loop in a thread (for blocking clients: SDKs, raw sockets)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"], holder["port"] = runner, runner.addresses[0][1]
        started.set()

    def main() -> None:
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # report a failed start to the waiting test
            holder["error"] = exc
            started.set()
            return
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not started.wait(60) or "error" in holder:
        raise RuntimeError(f"the app did not start: {holder.get('error')!r}")
    try:
        yield int(holder["port"])
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()
