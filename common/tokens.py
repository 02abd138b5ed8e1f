"""Task tokens: opaque to clients, unforgeable (HMAC), and routing to their execution without a lookup.

A token is base64("v1#<flow id>#<execution name>#<task id>#<base64 HMAC-SHA1>"), the shape the
cloud's tokens were observed to have. The MAC covers the three fields with the server's secret.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from common.keys import execution_tag


class InvalidToken(ValueError):
    """A string that is not a task token this service issued."""


@dataclass(frozen=True)
class TaskRef:
    """What a valid token names."""

    flow_id: str
    execution: str
    task_id: str

    @property
    def tag(self) -> str:
        """The execution's routing tag."""
        return execution_tag(self.flow_id, self.execution)


def _mac(secret: str, flow_id: str, execution: str, task_id: str) -> str:
    digest = hmac.new(secret.encode(), f"{flow_id}#{execution}#{task_id}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def make_token(secret: str, flow_id: str, execution: str, task_id: str) -> str:
    """The token of task `task_id` of an execution."""
    raw = f"v1#{flow_id}#{execution}#{task_id}#{_mac(secret, flow_id, execution, task_id)}"
    return base64.b64encode(raw.encode()).decode()


def parse_token(secret: str, token: str) -> TaskRef:
    """The task a token names; InvalidToken if it is malformed or its MAC does not verify."""
    try:
        raw = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken("the task token is not one this service issued") from None
    parts = raw.split("#")
    if len(parts) != 5 or parts[0] != "v1" or not all(parts[1:4]):
        raise InvalidToken("the task token is not one this service issued")
    _, flow_id, execution, task_id, mac = parts
    if not hmac.compare_digest(mac.encode(), _mac(secret, flow_id, execution, task_id).encode()):
        raise InvalidToken("the task token is not one this service issued")
    return TaskRef(flow_id, execution, task_id)
