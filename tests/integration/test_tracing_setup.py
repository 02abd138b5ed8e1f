"""common/tracing.py's set-up in a fresh process each: off by default (nothing of OpenTelemetry
imported), on from the OTEL_* variables over OTLP/HTTP and gRPC to receivers in the test, and a
clear start-up error when the extra is missing."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

from openfnf.redisserver import free_port
from tests.conftest import ROOT
from tests.otlp import Receiver, Span, decode

PROBE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
import redis, redis.asyncio  # redis-py imports the OpenTelemetry API itself when it is installed (its own metrics)
def otel(): return {m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")}
BEFORE = otel()
from common import tracing
import api.app, worker.celeryapp, worker.timers  # every edge that calls a tracing helper
on = tracing.configure("openfnf-probe")
print("ON" if on else "OFF")
with tracing.span("probe", {"openfnf.execution": "x1"}) as span:
    headers = {}
    tracing.inject(headers)
    print("TRACEPARENT", tracing.traceparent() or "-", headers.get("traceparent", "-"))
tracing.shutdown()
print("OTEL_IMPORTED", sorted(otel() - BEFORE) != [])
"""


def _run(env: dict[str, str], prelude: str = "") -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENFNF_"))}
    done = subprocess.run(
        [sys.executable, "-c", prelude + PROBE], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_off_by_default_nothing_of_opentelemetry_is_imported() -> None:
    out = _run({})
    assert "OFF" in out.splitlines()
    assert "TRACEPARENT - -" in out
    assert "OTEL_IMPORTED False" in out


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, False),
    ],
)
def test_which_variables_turn_tracing_on(env: dict[str, str], on: bool) -> None:
    from common import tracing

    assert tracing.requested(env) is on


def test_over_otlp_http_with_the_service_name_and_traceparent() -> None:
    receiver = Receiver().start()
    try:
        out = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "my-openfnf"})
        spans = receiver.wait_for(lambda s: bool(s))
    finally:
        receiver.stop()
    assert "ON" in out.splitlines() and "OTEL_IMPORTED True" in out
    probe = next(s for s in spans if s.name == "probe")
    assert probe.service == "my-openfnf" and probe.attributes == {"openfnf.execution": "x1"}
    line = next(x for x in out.splitlines() if x.startswith("TRACEPARENT"))
    _, stored, sent = line.split()
    assert stored == sent
    version, trace_id, span_id, flags = stored.split("-")
    assert (version, trace_id, span_id) == ("00", probe.trace_id, probe.span_id) and int(flags, 16) & 1  # sampled


def test_the_default_service_name_is_the_process_role() -> None:
    receiver = Receiver().start()
    try:
        _run({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces"})
        spans = receiver.wait_for(lambda s: bool(s))
    finally:
        receiver.stop()
    assert {s.service for s in spans} == {"openfnf-probe"}


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[int, list[Span]]]:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    got: list[Span] = []
    arrived = threading.Event()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
            got.extend(decode(request.SerializeToString()))
            arrived.set()
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield port, got
    finally:
        server.stop(None)


def test_over_otlp_grpc(grpc_receiver: tuple[int, list[Span]]) -> None:
    port, got = grpc_receiver
    out = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true"})
    assert "ON" in out.splitlines()
    # tracing.shutdown() in the probe exported before the process ended: the span is here already
    assert [s.name for s in got] == ["probe"], out


def test_an_unknown_protocol_is_a_clear_error_and_no_tracing() -> None:
    out = _run({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert "OFF" in out.splitlines()
    assert "ERROR tracing is off: OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not supported; use one of http/protobuf, grpc" in out


def test_the_missing_extra_is_said_clearly_at_start_up() -> None:
    hide = "import sys\nsys.modules['opentelemetry.sdk'] = None  # as if openfnf[tracing] were not installed\n"
    out = _run({"OTEL_TRACES_EXPORTER": "otlp"}, prelude=hide)
    assert "OFF" in out.splitlines()
    assert "ERROR tracing is off: the OTEL_* variables ask for traces but the OpenTelemetry packages are not installed" in out
    assert "pip install 'openfnf[tracing]'" in out


def test_the_cli_says_so_too(tmp_path: Any) -> None:
    """`openfnf timers` (any process) logs the error at start-up and runs on untraced."""
    sitecustomize = tmp_path / "sitecustomize.py"
    sitecustomize.write_text("import sys\nsys.modules['opentelemetry.sdk'] = None\n", encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENFNF_"))}
    env = {**clean, "OTEL_TRACES_EXPORTER": "otlp", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OPENFNF_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc = subprocess.Popen([sys.executable, "-m", "openfnf", "timers"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # waits for the line itself, not for a time
            if "tracing is off" in line:
                assert "pip install 'openfnf[tracing]'" in line
                break
        else:
            pytest.fail("no start-up message")
    finally:
        proc.terminate()
        proc.wait(20)
