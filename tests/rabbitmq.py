"""The tests' RabbitMQ node (openfnf/rabbitserver.py): fails under CI=true without rabbitmq-server, skips elsewhere.

OPENFNF_TEST_RABBITMQ_SERVER names another rabbitmq-server script to run.
"""
from __future__ import annotations

import os
from pathlib import Path

from openfnf.rabbitserver import RabbitServer, find_rabbitmq
from openfnf.rabbitserver import start_rabbitmq as _start
from tests import needs

__all__ = ["RabbitServer", "start_rabbitmq"]


def start_rabbitmq(base: Path) -> RabbitServer:
    """A started RabbitMQ node of the test's own under `base`."""
    binary = os.environ.get("OPENFNF_TEST_RABBITMQ_SERVER") or find_rabbitmq()
    if binary is None:
        needs.missing("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    return _start(base, binary)
