"""Slow, stalled and oversized clients, over raw sockets: they are cut off, and cannot hold the server.

The limits are settings (docs/compatibility.md, "Front door"); here they are short so the test is quick.
Waits are bounded conditions ("the server closed the socket"), never timing assertions.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from tests.frontdoor import FORM_HEADERS, signed_request
from tests.integration.test_front_door_protocol import make_settings

BOUND = 20.0  # seconds: if nothing happens by then, the test fails (the limits below are well under a second)


@pytest.fixture
async def client(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> TestClient:
    settings = make_settings(
        redis_server, tmp_path, keepalive_timeout_seconds=0.5, body_read_timeout_seconds=0.5,
        max_line_bytes=4096, max_field_bytes=2048, max_headers=20, lingering_seconds=0.2,
    )  # fmt: skip
    return await aiohttp_client(make_app(settings))


async def connect(client: TestClient) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(client.server.host, client.server.port)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does). A close while
    the client's bytes wait unread in the server's socket reaches the client as a reset, not an end of
    stream (the kernel's choice, by timing): both are the server closing."""
    data = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=BOUND)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


async def a_normal_call_works(client: TestClient) -> None:
    path, form = signed_request("ListFlows")
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    assert resp.status == 200, await resp.text()


async def test_a_silent_connection_is_closed_and_holds_nothing(client: TestClient) -> None:
    silent = [await connect(client) for _ in range(30)]
    await a_normal_call_works(client)  # served while 30 connections sit idle
    for reader, writer in silent:
        assert await closed_by_server(reader) == b""
        writer.close()


async def test_headers_trickled_byte_by_byte_are_cut_off(client: TestClient) -> None:
    reader, writer = await connect(client)
    request = b"GET /?Action=ListFlows HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000

    async def trickle() -> None:
        for byte in request:
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.01)

    feeder = asyncio.create_task(trickle())
    await a_normal_call_works(client)
    assert await closed_by_server(reader) == b""  # closed although bytes kept coming, headers never completed
    feeder.cancel()
    writer.close()


async def test_a_stalled_body_is_408_and_closed(client: TestClient) -> None:
    path, _ = signed_request("ListFlows")
    reader, writer = await connect(client)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nLimit=5".encode())
    await writer.drain()
    await a_normal_call_works(client)
    data = await closed_by_server(reader)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data[:300]
    doc = json.loads(body)
    assert doc["Code"] == "RequestTimeout" and set(doc) == {"RequestId", "HostId", "Code", "Message"}
    writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /?Action=ListFlows&X=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line over max_line_bytes
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n",  # one header over max_field_bytes
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",  # too many headers
    ],
    ids=["line", "field", "count"],
)
async def test_oversized_heads_are_refused_and_closed(client: TestClient, request_bytes: bytes) -> None:
    reader, writer = await connect(client)
    writer.write(request_bytes)
    await writer.drain()
    data = await closed_by_server(reader)
    # aiohttp's HTTP parser answers these itself (HTTP/1.0 400, text), before the app sees a request.
    assert data.split(b" ", 2)[1] == b"400", data[:200]
    writer.close()
    await a_normal_call_works(client)


async def test_an_idle_keep_alive_connection_is_closed_after_a_call(client: TestClient) -> None:
    path, _ = signed_request("ListFlows", method="GET")
    reader, writer = await connect(client)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await closed_by_server(reader)  # answered, then dropped once idle
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    writer.close()
