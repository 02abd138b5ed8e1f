"""OpenTelemetry tracing: off unless the standard OTEL_* variables ask for it; no-ops when off.

`configure(service)` runs once at a process's start (front door, worker, timers). Tracing is on
when `OTEL_TRACES_EXPORTER` names `otlp` or an `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` is set (and
neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise); the rest is the
OpenTelemetry SDK's own configuration: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` (`http/protobuf`,
the default, or `grpc`), endpoint, headers and timeout, `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`. The redis-py and Celery
instrumentations are switched on, and the front door makes a span per request (api/spans.py);
`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` turns any of `redis`, `celery`, `aiohttp-server` off.

The OpenTelemetry packages are an optional extra (`pip install 'openfnf[tracing]'`) and are
imported only by `configure` when tracing is on. Until then `tracer` is None and every helper
returns at once: with tracing off nothing of OpenTelemetry is imported or touched per request.

A trace context travels between processes as a W3C `traceparent` string: stored with the
execution record (`tp`), in an activity command (`tp`), and in the tasks hash beside a task that
waits for a callback (`tp:<task id>`). Span and attribute names: docs/deploy.md "Tracing".
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

logger = logging.getLogger(__name__)

tracer: Any = None  # the OpenTelemetry Tracer while tracing is on; None: every helper is a no-op

# Attribute names (docs/deploy.md "Tracing").
FLOW = "openfnf.flow"
EXECUTION = "openfnf.execution"
STATE = "openfnf.state"
ATTEMPT = "openfnf.attempt"
ACTION = "openfnf.action"

UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: not worth a trace each
PROTOCOLS = ("http/protobuf", "grpc")
EXTRA_HINT = "pip install 'openfnf[tracing]'"

_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable, sync and async
_STATE: dict[str, Any] = {}  # propagator, provider, the modules the helpers need (set by configure)


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but cannot be set up (the extra is missing, or a value is unusable)."""


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


def protocol(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP protocol the variables choose (http/protobuf unless told otherwise)."""
    env = os.environ if environ is None else environ
    chosen = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if chosen not in PROTOCOLS:
        raise TracingUnavailable(f"OTEL_EXPORTER_OTLP_PROTOCOL={chosen!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    return chosen


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process if the OTEL_* variables ask for it; whether it is on.

    `service` is the default `service.name` (`OTEL_SERVICE_NAME` wins). Asked for but impossible
    (the extra is not installed, an unknown protocol): one clear ERROR line, and the process runs
    untraced.
    """
    global tracer
    env = os.environ if environ is None else environ
    if tracer is not None or not requested(env):
        return tracer is not None
    try:
        tracer = _setup(service, env)
    except TracingUnavailable as exc:
        logger.error("tracing is off: %s", exc)
        return False
    logger.info("tracing on: %s spans exported over OTLP (%s)", service, protocol(env))
    return True


def _setup(service: str, env: Mapping[str, str]) -> Any:
    chosen = protocol(env)
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if chosen == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    except ImportError as exc:
        raise TracingUnavailable(
            f"the OTEL_* variables ask for traces but the OpenTelemetry packages are not installed ({exc.name}): {EXTRA_HINT}"
        ) from None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    provider.sampler = QuietRoots(provider.sampler)  # type: ignore[assignment]  # wraps what OTEL_TRACES_SAMPLER chose (duck-typed Sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers, OTEL_BSP_*: from the env
    trace.set_tracer_provider(provider)
    _STATE.update(trace=trace, provider=provider, propagator=TraceContextTextMapPropagator())
    _instrument(provider, env)
    return trace.get_tracer("openfnf")


def _instrument(provider: Any, env: Mapping[str, str]) -> None:
    """The redis-py and Celery instrumentations, unless disabled by name.

    The front door's request spans come from api/spans.py's middleware rather than
    opentelemetry-instrumentation-aiohttp-server: that one rebuilds and redacts the full URL of every
    request, and the SDKs sign every parameter into the query string, so it cost a sixth of the
    traced front door's CPU (py-spy, `python -m bench --tracing --profile`).
    """
    disabled = {n.strip() for n in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    _STATE["request_spans"] = "aiohttp-server" not in disabled
    for name, module, cls in (
        ("redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor"),
        ("celery", "opentelemetry.instrumentation.celery", "CeleryInstrumentor"),
    ):
        if name in disabled:
            continue
        try:
            instrumentor = getattr(__import__(module, fromlist=[cls]), cls)
        except ImportError:
            logger.warning("tracing: the %s instrumentation is not installed (%s)", name, EXTRA_HINT)
            continue
        instrumentor().instrument(tracer_provider=provider)


class QuietRoots:
    """The configured sampler, except that a client span with no parent is never recorded.

    Background loops (Celery polling the broker, the timers' polls, heartbeats) call Redis all the
    time outside any request or drive; the redis instrumentation would make each such call a
    trace of its own. Redis calls inside a request, a drive or an activity are kept.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None, links: Any = None, trace_state: Any = None) -> Any:
        """DROP for an orphan client span, else what the configured sampler says."""
        trace = _STATE["trace"]
        if kind == trace.SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        """The sampler's name as the SDK shows it."""
        return f"QuietRoots{{{self.inner.get_description()}}}"


def shutdown() -> None:
    """Export what is buffered and stop (tests; processes do it at exit through the SDK's atexit hook)."""
    provider = _STATE.get("provider")
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 5000) -> None:
    """Export what is buffered now."""
    provider = _STATE.get("provider")
    if provider is not None:
        provider.force_flush(timeout_ms)


def traceparent() -> str:
    """The W3C traceparent of the current span; '' when tracing is off or nothing is recorded."""
    if tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _STATE["propagator"].inject(carrier)
    return carrier.get("traceparent", "")


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's `traceparent` to outgoing HTTP headers (nothing when off)."""
    if tracer is not None:
        _STATE["propagator"].inject(headers)


def _context(parent: str) -> Any:
    """The OpenTelemetry context a stored traceparent names (an empty context for '')."""
    from opentelemetry.context import Context

    if not parent:
        return Context()
    return _STATE["propagator"].extract({"traceparent": parent}, context=Context())


def _span_context(parent: str) -> Any:
    return _STATE["trace"].get_current_span(_context(parent)).get_span_context()


def _links(links: list[str], link_current: bool) -> list[Any]:
    link = _STATE["trace"].Link
    out = [link(ctx) for ctx in (_span_context(tp) for tp in links if tp) if ctx.is_valid]
    if link_current:
        current = _STATE["trace"].get_current_span().get_span_context()
        if current.is_valid:
            out.append(link(current))
    return out


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    links: list[str] | None = None,
    link_current: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (the block gets it, or None when tracing is off).

    `parent`: a stored traceparent to continue (`''`: a new trace; None: the current span's).
    `links`: stored traceparents to link to; `link_current`: also link the span current now (when
    `parent` moves the span into another trace, e.g. a drive under its execution's trace links the
    Celery task that carried it).
    """
    if tracer is None:
        return _NOOP
    return _span(name, attributes, parent, links or [], link_current)


@contextlib.contextmanager
def _span(name: str, attributes: Mapping[str, Any] | None, parent: str | None, links: list[str], link_current: bool) -> Iterator[Any]:
    context = None if parent is None else _context(parent)
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None and v != ""}
    with tracer.start_as_current_span(name, context=context, attributes=attrs, links=_links(links, link_current)) as current:
        yield current


def annotate(current: Any, attributes: Mapping[str, Any]) -> None:
    """Set attributes on a span `span()` gave (None when off: nothing)."""
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None and v != ""})


def failed(current: Any, error: str, cause: str = "") -> None:
    """Mark a span as failed with a flow-level error name (None when off: nothing)."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute("openfnf.error", error)
        current.set_status(Status(StatusCode.ERROR, f"{error}: {cause}"[:256] if cause else error))


def request_spans() -> bool:
    """Whether the front door makes a span per request (tracing on, `aiohttp-server` not disabled)."""
    return tracer is not None and bool(_STATE.get("request_spans"))


def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """A SERVER span for an incoming request, continuing the caller's `traceparent` if it sent one."""
    context = _STATE["propagator"].extract(headers)
    return tracer.start_as_current_span(name, context=context, kind=_STATE["trace"].SpanKind.SERVER, attributes=attributes)  # type: ignore[no-any-return]


def request_action(action: str) -> None:
    """Name the front door's request span after the RPC action (StartExecution, ReportTaskSucceeded...)."""
    if tracer is None:
        return
    current = _STATE["trace"].get_current_span()
    if current.is_recording():
        current.update_name(action or "unknown")
        current.set_attribute(ACTION, action)


def execution_started(flow: str, execution: str) -> str:
    """Name the execution on the current (StartExecution) span; the traceparent to store with it."""
    if tracer is None:
        return ""
    current = _STATE["trace"].get_current_span()
    if current.is_recording():
        current.set_attributes({FLOW: flow, EXECUTION: execution})
    return traceparent()
