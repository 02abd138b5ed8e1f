"""Logging set-up: request id, flow and execution added to every record through contextvars.

Two formats (setting `log_format`): `text` for a terminal, `json` (one object per line) for a
log collector. Both carry the same context attributes.
"""
from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
flow_var: contextvars.ContextVar[str] = contextvars.ContextVar("flow", default="-")
execution_var: contextvars.ContextVar[str] = contextvars.ContextVar("execution", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s flow=%(flow)s exec=%(execution)s] %(message)s"
CONTEXT_FIELDS = ("request_id", "flow", "execution")


class ContextFilter(logging.Filter):
    """Adds request_id, flow and execution attributes to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.flow = flow_var.get()
        record.execution = execution_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339 UTC, ms), level, logger, message, context, pid, exception."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        doc: dict[str, object] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, "-")
            doc[name] = None if value == "-" else value  # null, not "-": easier to filter on in a log store
        doc["pid"] = record.process
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, ensure_ascii=False, default=str)


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for a `log_format` setting value (`text` or `json`)."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {fmt!r}: use text or json")


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Logs on stderr with the context attributes, as plain text or JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become records too: one format for every line
