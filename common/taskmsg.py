"""Celery task messages (protocol 2) as the kombu Redis transport stores them, built without I/O.

The front door and the timers publish drives by pushing these onto the queue's list themselves,
so publishing never blocks an event loop and can share a pipeline with other writes.

A drive message carries up to `per_message` execution tags: Celery's own cost per message (about
0.7 ms of worker CPU here) is paid once for the batch, and the worker pipelines the batch's
acquires and commits (worker/driver.py `Driver.drive_many`).
"""
from __future__ import annotations

import base64
import json
import uuid


def redis_task_message(task: str, args: list[object], queue: str, origin: str = "openfnf") -> str:
    """The JSON string kombu's Redis transport would LPUSH for `send_task(task, args, queue=queue)`."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": origin,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)


DRIVE_TASK = "openfnf.drive"  # args: one or more execution tags, driven in one batch
ACTIVITY_TASK = "openfnf.activity"


def drive_messages(tags: list[str], queue: str, per_message: int) -> list[str]:
    """The drive messages for these executions: each tag once, at most `per_message` tags per message."""
    unique = list(dict.fromkeys(tags))
    size = max(1, per_message)
    return [redis_task_message(DRIVE_TASK, list(unique[i : i + size]), queue) for i in range(0, len(unique), size)]
