"""Scenario 3: start-to-Succeeded latency of a 1-state flow at low load, one execution at a time.

Ours: StartExecution, then DescribeExecution with WaitTimeSeconds (the long-poll answers when the
execution ends) on the same keep-alive connection; the clock runs from sending the start to
reading the Succeeded answer. Both requests are signed before the clock starts. The peer has no
long-poll: DescribeExecution is polled back to back until the status is no longer RUNNING.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench import peer
from bench.context import Ctx
from bench.flows import asl_pass_chain, fdl_pass_chain
from bench.httpload import HttpConnection
from bench.measure import wait_ended
from bench.services import KEY_ID, SECRET, OpenFnF
from bench.table import Row
from common.percentile import percentile
from openfnf.loadtest import sign


def _fnf_request(host: str, action: str, params: dict[str, str]) -> bytes:
    method, query, body = sign(action, params, KEY_ID, SECRET)
    body = body or b""
    return (
        f"{method} /?{query} HTTP/1.1\r\nHost: {host}\r\nx-acs-action: {action}\r\nx-acs-version: 2019-03-15\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _sfn_request(host: str, target: str, doc: dict[str, Any]) -> bytes:
    body = json.dumps(doc).encode()
    return (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSStepFunctions.{target}\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/states/aws4_request, SignedHeaders=host, "
        f"Signature={'0' * 64}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _ours_loop(port: int, n: int, prefix: str) -> tuple[list[float], list[str]]:
    host = f"127.0.0.1:{port}"
    conn = HttpConnection("127.0.0.1", port)
    out: list[float] = []
    bad: list[str] = []
    try:
        for i in range(n):
            name = f"{prefix}{i}"
            start = _fnf_request(host, "StartExecution", {"FlowName": "one", "ExecutionName": name})
            describe = _fnf_request(host, "DescribeExecution", {"FlowName": "one", "ExecutionName": name, "WaitTimeSeconds": "10"})
            t0 = time.perf_counter()
            status, body = await conn.request(start)
            if status != 200:
                bad.append(body[:200].decode(errors="replace"))
                continue
            status, body = await conn.request(describe)
            t1 = time.perf_counter()
            if status != 200 or json.loads(body).get("Status") != "Succeeded":
                bad.append(body[:200].decode(errors="replace"))
                continue
            out.append((t1 - t0) * 1000)
            await asyncio.sleep(0.01)  # low load: one at a time, with a pause
    finally:
        await conn.close()
    return out, bad


async def _peer_loop(port: int, arn: str, n: int, prefix: str) -> tuple[list[float], list[str]]:
    host = f"127.0.0.1:{port}"
    conn = HttpConnection("127.0.0.1", port)
    out: list[float] = []
    bad: list[str] = []
    try:
        for i in range(n):
            start = _sfn_request(host, "StartExecution", {"stateMachineArn": arn, "name": f"{prefix}{i}", "input": "{}"})
            t0 = time.perf_counter()
            status, body = await conn.request(start)
            if status != 200:
                bad.append(body[:200].decode(errors="replace"))
                continue
            describe = _sfn_request(host, "DescribeExecution", {"executionArn": json.loads(body)["executionArn"]})
            state = "RUNNING"
            while state == "RUNNING" and time.perf_counter() - t0 < 10:
                status, body = await conn.request(describe)
                state = json.loads(body).get("status", "?") if status == 200 else f"HTTP {status}"
            t1 = time.perf_counter()
            if state != "SUCCEEDED":
                bad.append(state)
                continue
            out.append((t1 - t0) * 1000)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return out, bad


def run(ctx: Ctx) -> None:
    """Scenario 3's rows."""
    s = ctx.sizes
    svc = OpenFnF(ctx.sub("latency-ours"), workers=2).start()
    try:
        flow_id = svc.create_flow("one", fdl_pass_chain(1))
        asyncio.run(_ours_loop(svc.port, 10, "w"))  # warm
        ours, bad = asyncio.run(_ours_loop(svc.port, s.latency, "x"))
        assert svc.r is not None
        server = wait_ended(svc.r, flow_id, [f"x{i}" for i in range(s.latency)], 30).latencies_ms()
    finally:
        svc.stop()
    moto = ctx.peer()
    moto.reset()
    moto.set_execution(True)
    arn = peer.create_state_machine(moto.client(), "one", asl_pass_chain(1))
    asyncio.run(_peer_loop(moto.port, arn, 5, "w"))
    theirs, pbad = asyncio.run(_peer_loop(moto.port, arn, s.latency_peer, "x"))
    ours.sort()
    theirs.sort()
    rep = ctx.report
    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    row = rep.add(Row("3 1-state latency", f"start-to-Succeeded p50, client-observed, n={len(ours)}", "ms", p50, percentile(theirs, 50),
                      higher=False, target="< 5 ms"))  # fmt: skip
    row.met = 0 < p50 < 5
    row = rep.add(Row("3 1-state latency", "start-to-Succeeded p99, client-observed", "ms", p99, percentile(theirs, 99), higher=False,
                      target="< 20 ms"))  # fmt: skip
    row.met = 0 < p99 < 20
    rep.add(Row("3 1-state latency", "server-side started→stopped p50 / p99 (ms clock)", "ms", percentile(server, 50), higher=False,
                note=f"p99 {percentile(server, 99):.0f} ms"))  # fmt: skip
    if bad or pbad:
        rep.note(f"Scenario 3: {len(bad)} of ours and {len(pbad)} of the peer's did not succeed ({(bad or pbad)[0][:160]})")
