"""Logging set-up: request id, flow and execution added to every record through contextvars."""
from __future__ import annotations

import contextvars
import logging

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
flow_var: contextvars.ContextVar[str] = contextvars.ContextVar("flow", default="-")
execution_var: contextvars.ContextVar[str] = contextvars.ContextVar("execution", default="-")


class ContextFilter(logging.Filter):
    """Adds request_id, flow and execution attributes to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.flow = flow_var.get()
        record.execution = execution_var.get()
        return True


def setup_logging(level: str = "INFO") -> None:
    """Plain-text logs on stderr with the context attributes."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [req=%(request_id)s flow=%(flow)s exec=%(execution)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
