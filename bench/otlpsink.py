"""`python -m bench --tracing`: an OTLP/HTTP sink in the bench process that every OpenFnF process of
the run exports its spans to (100% sampling), so the table shows what tracing costs.

It answers every export at once and counts requests, bytes and spans (decoded with
opentelemetry-proto when it is installed, as `openfnf[tracing]` brings it), keeping nothing else.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openfnf.redisserver import free_port


@dataclass
class OtlpSink:
    """Counts what OTLP/HTTP exporters send to http://127.0.0.1:<port>/v1/traces."""

    port: int = field(default_factory=free_port)
    requests: int = 0
    bytes: int = 0
    spans: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for the sink."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The OTEL_* variables that send every span of an OpenFnF process here."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",  # 100%
            # Queue enough that no span is dropped in a burst (the SDK's 2,048 would drop most of
            # scenario 1's, and hide their export cost): every span made is paid for.
            "OTEL_BSP_MAX_QUEUE_SIZE": os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "200000"),
            "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "500"),
        }

    def start(self) -> OtlpSink:
        """Serve in a daemon thread."""
        sink = self
        decoder: Any = None  # without opentelemetry-proto: counted as requests and bytes only
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as decoder
        except ImportError:
            pass

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector serves the exporters

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                n = 0
                if decoder is not None:
                    request = decoder()
                    request.ParseFromString(body)
                    n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                with sink.lock:
                    sink.requests += 1
                    sink.bytes += len(body)
                    sink.spans += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, name="otlp-sink", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def summary(self) -> str:
        """What arrived, for the table's notes."""
        with self.lock:
            return f"{self.spans:,} spans in {self.requests:,} OTLP/HTTP exports ({self.bytes / 1e6:,.1f} MB)"
