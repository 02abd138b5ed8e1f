"""A lean closed-loop HTTP/1.1 load client on asyncio streams, one process, keep-alive connections.

Each of `concurrency` connections sends a request, reads the whole answer, sends the next; the
run ends after `duration` seconds or `count` requests, whichever comes first. Requests are built
by a *kind* (signed OpenFnF StartExecution, moto StartExecution, a no-op POST), one per index,
while the clock runs, so signing is part of the client's cost: the result carries the client's
CPU seconds, and requests per client CPU second is its ceiling.

Run as a process by the harness: `python -m bench.httpload SPEC_JSON`, prints one JSON result.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.percentile import percentile
from openfnf.loadtest import pct

Builder = Callable[[int], bytes]


class FastSignerV1:
    """Signature v1 (api.auth.signature_v1) for requests that differ only in a few values, at ~10 us each.

    The canonical string is sorted parameters, percent-encoded twice in the string to sign; the
    constant parts are encoded once here, so a request only encodes its variable values.
    """

    def __init__(self, method: str, fixed: dict[str, str], variable: list[str], secret: str) -> None:
        names = sorted([*fixed, *variable])
        self.variable = [k for k in names if k in variable]
        self.segments: list[str] = []  # constant text before each variable value, then the tail
        text = ""
        for n, k in enumerate(names):
            sep = "" if n == 0 else "&"
            if k in fixed:
                text += sep + pct(k) + "=" + pct(fixed[k])
            else:
                self.segments.append(pct(text + sep + pct(k) + "="))
                text = ""
        self.segments.append(pct(text))
        self.head = method + "&" + pct("/") + "&"
        self.mac = hmac.new((secret + "&").encode(), digestmod=hashlib.sha1)

    def sign(self, values: dict[str, str]) -> str:
        """The Signature for the fixed parameters plus these variable values."""
        parts = [self.head]
        for seg, k in zip(self.segments, self.variable, strict=False):  # one segment more than variables
            parts.append(seg)
            parts.append(pct(pct(values[k])))
        parts.append(self.segments[-1])
        mac = self.mac.copy()
        mac.update("".join(parts).encode())
        return base64.b64encode(mac.digest()).decode()


def fnf_builder(host: str, spec: dict[str, Any]) -> Builder:
    """Signed StartExecution requests as the SDK sends them: common params in the query, the rest in a form body."""
    key, secret, flow, prefix = spec["key_id"], spec["secret"], spec["flow"], spec["prefix"]
    raw_input = spec.get("input")
    common = {"Action": "StartExecution", "Format": "json", "Version": "2019-03-15", "SignatureMethod": "HMAC-SHA1",
              "SignatureVersion": "1.0", "AccessKeyId": key}  # fmt: skip
    form_fixed = {"FlowName": flow, **({"Input": raw_input} if raw_input is not None else {})}
    signer = FastSignerV1("POST", {**common, **form_fixed}, ["Timestamp", "SignatureNonce", "ExecutionName"], secret)
    query_fixed = "&".join(f"{pct(k)}={pct(v)}" for k, v in common.items())
    form_fixed_text = "&".join(f"{pct(k)}={pct(v)}" for k, v in form_fixed.items())
    head = f"\r\nHost: {host}\r\nx-acs-action: StartExecution\r\nx-acs-version: 2019-03-15\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    stamp = ["", -1]  # (text, second) of the current Timestamp
    nonce_base = spec.get("nonce_prefix", prefix)

    def build(i: int) -> bytes:
        second = int(time.time())
        if second != stamp[1]:
            stamp[0], stamp[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)), second
        values = {"Timestamp": str(stamp[0]), "SignatureNonce": f"{nonce_base}n{i}", "ExecutionName": f"{prefix}{i}"}
        signature = signer.sign(values)
        query = (f"{query_fixed}&Timestamp={pct(values['Timestamp'])}&SignatureNonce={values['SignatureNonce']}"
                 f"&Signature={pct(signature)}")  # fmt: skip
        body = f"{form_fixed_text}&ExecutionName={pct(values['ExecutionName'])}".encode()
        return f"POST /?{query} HTTP/1.1{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return build


def sfn_builder(host: str, spec: dict[str, Any]) -> Builder:
    """moto (AWS JSON 1.0) StartExecution requests; moto reads the region from the Authorization header, checks no signature."""
    arn, prefix = spec["arn"], spec["prefix"]
    raw_input = spec.get("input") or "{}"
    auth = (
        "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/states/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
    )

    def build(i: int) -> bytes:
        body = json.dumps({"stateMachineArn": arn, "name": f"{prefix}{i}", "input": raw_input}).encode()
        head = (
            f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.0\r\n"
            f"X-Amz-Target: AWSStepFunctions.StartExecution\r\nX-Amz-Date: 20240101T000000Z\r\n"
            f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return build


def noop_builder(host: str, spec: dict[str, Any]) -> Builder:
    """A small POST with a form body, about the size of a StartExecution."""
    prefix = spec.get("prefix", "n")

    def build(i: int) -> bytes:
        body = f"FlowName=bench&ExecutionName={prefix}{i}".encode()
        return (
            f"POST /?Action=Noop HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return build


BUILDERS: dict[str, Callable[[str, dict[str, Any]], Builder]] = {"fnf": fnf_builder, "sfn": sfn_builder, "noop": noop_builder}


class HttpConnection:
    """One keep-alive connection: send a request, read status, headers and body (Content-Length or chunked)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """(status, body) of one request; reconnects when the server closed the connection."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            body = await self.reader.readexactly(int(lower[at + 17 : end]))
        elif b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:  # HTTP/1.0 style: the body runs to the close
            body = await self.reader.read()
            await self.close()
            return status, body
        if b"\r\nconnection: close" in lower:
            await self.close()
        return status, body

    async def close(self) -> None:
        """Close the socket (a later request reconnects)."""
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


@dataclass
class LoadResult:
    """What one load run measured; latencies in seconds."""

    sent: int = 0
    ok: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    ok_indexes: list[int] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of the measured window
    client_cpu: float = 0.0  # CPU seconds this process used in the window
    first_error: str = ""

    def summary(self, keep_indexes: bool) -> dict[str, Any]:
        """The JSON the harness reads."""
        lat = sorted(self.latencies)
        out: dict[str, Any] = {
            "sent": self.sent, "ok": self.ok, "codes": self.codes, "elapsed": self.elapsed, "client_cpu": self.client_cpu,
            "rate": self.ok / self.elapsed if self.elapsed else 0.0,
            "p50_ms": percentile(lat, 50) * 1000, "p90_ms": percentile(lat, 90) * 1000,
            "p99_ms": percentile(lat, 99) * 1000, "max_ms": (lat[-1] * 1000 if lat else 0.0),
            "client_cpu_per_req_us": (self.client_cpu / self.sent * 1e6) if self.sent else 0.0,
            "first_error": self.first_error,
        }  # fmt: skip
        if keep_indexes:
            out["ok_indexes"] = self.ok_indexes
        return out


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run(spec: dict[str, Any]) -> LoadResult:
    """Drive the load `spec` describes: host, port, kind, concurrency, duration, count, warmup."""
    host, port = spec["host"], int(spec["port"])
    build = BUILDERS[spec["kind"]](f"{host}:{port}", spec)
    concurrency = int(spec.get("concurrency", 64))
    duration = float(spec.get("duration", 10.0))
    count = int(spec.get("count", 10**7))
    warmup = float(spec.get("warmup", 0.0))  # seconds of load before the window opens; not counted
    ok_status = int(spec.get("ok_status", 200))
    result = LoadResult()
    counter = iter(range(count + 10**7))  # warm-up requests take indexes too (names stay unique)
    measured = 0
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_window = t_start + warmup
    t_end = t_window + duration
    cpu_window = _cpu()

    async def one_connection() -> None:
        nonlocal measured
        conn = HttpConnection(host, port)
        try:
            while True:
                now = loop.time()
                if now >= t_end or (now >= t_window and measured >= count):
                    return
                i = next(counter)
                raw = build(i)
                counted = now >= t_window
                if counted:
                    measured += 1
                t0 = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(conn.request(raw), 30)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    await conn.close()
                    if counted:
                        result.sent += 1
                        result.codes[type(exc).__name__] = result.codes.get(type(exc).__name__, 0) + 1
                        result.first_error = result.first_error or repr(exc)
                    continue
                t1 = time.perf_counter()
                if not counted:
                    continue
                result.sent += 1
                result.latencies.append(t1 - t0)
                if status == ok_status:
                    result.ok += 1
                    result.ok_indexes.append(i)
                else:
                    code = str(status)
                    try:
                        code += " " + str(json.loads(body).get("Code") or json.loads(body).get("__type") or "")
                    except (ValueError, AttributeError):
                        pass
                    result.codes[code] = result.codes.get(code, 0) + 1
                    result.first_error = result.first_error or body[:300].decode(errors="replace")
        finally:
            await conn.close()

    async def open_window() -> None:
        nonlocal cpu_window
        await asyncio.sleep(max(0.0, t_window - loop.time()))
        cpu_window = _cpu()

    opener = asyncio.create_task(open_window())
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    await opener
    t_done = loop.time()
    result.elapsed = t_done - t_window  # the window closes with the last answer
    result.client_cpu = _cpu() - cpu_window
    return result


def main() -> None:
    """Entry point: `python -m bench.httpload SPEC_JSON` -> one JSON line on stdout."""
    spec = json.loads(sys.argv[1])
    result = asyncio.run(run(spec))
    print(json.dumps(result.summary(bool(spec.get("keep_indexes")))))


if __name__ == "__main__":
    main()
