"""StartExecution's Redis round trips, counted on the wire: the claim is exactly one."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio.connection as aioconn
from aiohttp.test_utils import TestClient

from api.app import STORE, make_app
from api.auth import signature_v1
from common.settings import Settings

KEY, SECRET = "LTAIroundtrip", "roundtrip-secret"


def signed(params: dict[str, str], method: str = "POST") -> tuple[str, dict[str, str]]:
    """Query string and form body of a signed request (body params are signed too)."""
    query = {
        "Action": params.pop("Action"), "Version": "2019-03-15", "Format": "json", "AccessKeyId": KEY,
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    query["Signature"] = signature_v1({**query, **params}, method, SECRET)
    return urlencode(query), params


class Counting:
    """Counts commands written to Redis by every asyncio connection (one write = one round trip)."""

    def __init__(self) -> None:
        self.sent = 0
        self.commands: list[Any] = []

    def __enter__(self) -> Counting:
        self._orig = aioconn.AbstractConnection.send_packed_command
        counter = self

        async def send(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.sent += 1
            counter.commands.append(command)
            await counter._orig(conn, command, check_health)

        aioconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aioconn.AbstractConnection.send_packed_command = self._orig  # type: ignore[method-assign]


@pytest.fixture
def settings(redis_server: str, r: Any) -> Iterator[Settings]:
    # No background throttle-rule refresh during a count (it would be one more command).
    # Its Pass flows go to the workers, as any flow (the start's own run of pure flows is counted below).
    yield Settings(redis_url=redis_server, access_key_id=KEY, access_key_secret=SECRET, throttle_refresh_ms=600_000, pure_at_start_events=0, _env_file=None)


async def call(client: TestClient, params: dict[str, str]) -> dict[str, Any]:
    query, form = signed(dict(params))
    resp = await client.post(f"/?{query}", data=form)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_the_claim_is_one_round_trip(aiohttp_client: Any, settings: Settings) -> None:
    app = make_app(settings)
    client = await aiohttp_client(app)
    definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
    await call(client, {"Action": "CreateFlow", "Name": "rt", "Definition": definition, "Type": "FDL", "Description": ""})
    await call(client, {"Action": "StartExecution", "FlowName": "rt", "ExecutionName": "warm"})  # loads the scripts
    store = app[STORE]
    flow = await store.get_flow(settings.account_id, "rt")
    assert flow is not None
    with Counting() as counted:
        claim = await store.claim_execution(
            account=settings.account_id, flow=flow, name="counted", raw_input="", input_obj={},
            def_id=flow["DefId"], qualifier="", callback="", now=int(time.time() * 1000),
        )  # fmt: skip
    assert claim.created
    assert counted.sent == 1, counted.commands

    with Counting() as whole:
        await call(client, {"Action": "StartExecution", "FlowName": "rt", "ExecutionName": "whole"})
    sent = [bytes(c[0] if isinstance(c, list) else c)[:48].replace(b"\r\n", b" ") for c in whole.commands]
    # The admission (nonce, throttle and running cap, flow lookup: api/admission.py), the claim, the
    # drive hand-off. Concurrent requests share these round trips (api/batching.py).
    assert whole.sent == 3, sent


async def test_a_pure_flow_is_admission_and_claim_only(aiohttp_client: Any, settings: Settings) -> None:
    """A flow the start runs to its end itself (common/purestart.py): no wake-up, no drive, two round trips."""
    app = make_app(settings.model_copy(update={"pure_at_start_events": Settings.model_fields["pure_at_start_events"].default}))
    client = await aiohttp_client(app)
    definition = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    End: true\n"
    await call(client, {"Action": "CreateFlow", "Name": "pure", "Definition": definition, "Type": "FDL", "Description": ""})
    await call(client, {"Action": "StartExecution", "FlowName": "pure", "ExecutionName": "warm"})  # scripts; the flow known as pure
    with Counting() as whole:
        answer = await call(client, {"Action": "StartExecution", "FlowName": "pure", "ExecutionName": "whole"})
    assert answer["Status"] == "Succeeded"
    sent = [bytes(c if isinstance(c, bytes) else b"".join(bytes(p) for p in c)) for c in whole.commands]
    assert whole.sent == 2, [s[:120] for s in sent]
    assert b"ZADD" not in sent[0] and b"EVALSHA" in sent[1] and not any(b"LPUSH" in s for s in sent)
