"""An in-test OTLP receiver: OTLP/HTTP (protobuf) on a free port, decoded with opentelemetry-proto.

Also answers `GET /hook` as an HTTP endpoint for HTTP tasks, keeping the headers it was sent.
"""
from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openfnf.redisserver import free_port


@dataclass(frozen=True)
class Span:
    """One received span, ids as hex."""

    name: str
    trace_id: str
    span_id: str
    parent: str  # '' for a root
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id)
    service: str
    kind: int


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def decode(body: bytes) -> list[Span]:
    """The spans of one ExportTraceServiceRequest."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for rs in request.resource_spans:
        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(
                    name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent=s.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in s.attributes},
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    service=str(resource.get("service.name", "")), kind=int(s.kind),
                ))  # fmt: skip
    return out


@dataclass
class Receiver:
    """Collects spans sent to http://127.0.0.1:<port>/v1/traces and the requests sent to /hook."""

    port: int = field(default_factory=free_port)
    spans: list[Span] = field(default_factory=list)
    hooks: list[dict[str, str]] = field(default_factory=list)  # headers of each /hook request
    changed: threading.Condition = field(default_factory=threading.Condition)  # notified when spans arrive
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for this receiver."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        """Serve in a daemon thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                got = decode(body)
                with receiver.changed:
                    receiver.spans.extend(got)
                    receiver.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                with receiver.changed:
                    receiver.hooks.append({k.lower(): v for k, v in self.headers.items()})
                payload = json.dumps({"hooked": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def snapshot(self) -> list[Span]:
        """The spans received so far."""
        with self.changed:
            return list(self.spans)

    def wait_for(self, check: Callable[[list[Span]], bool], timeout: float = 30.0) -> list[Span]:
        """The spans once `check(spans)` holds; AssertionError (with what arrived) after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check(list(self.spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("spans never arrived; got: " + ", ".join(sorted({s.name for s in self.spans})))
                self.changed.wait(left)
            return list(self.spans)
