"""The timers process: moves due timers into inboxes and re-drives executions whose wake-up is overdue.

Safe to run several: entries are claimed for a while with claim_due.lua, and every effect
(an inbox event with a deterministic id, a drive) is harmless if repeated.
"""
from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any

import redis

from common import keys
from common.redisurl import for_redis_py
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import DRIVE_TASK, redis_task_message

logger = logging.getLogger(__name__)

BATCH = 500
CLAIM_MS = 30000  # a claimed timer not finished within this fires again


class Timers:
    """One timers loop against a state Redis and a broker Redis."""

    def __init__(self, state: Any, broker: Any, settings: Settings) -> None:
        self.state = state
        self.broker = broker
        self.settings = settings
        self.scripts = Scripts(state)
        self.stopping = False

    def publish_drives(self, tags: list[str]) -> None:
        """Push drive messages for these executions."""
        if tags:
            self.broker.lpush(self.settings.drive_queue, *(redis_task_message(DRIVE_TASK, [t], self.settings.drive_queue) for t in tags))

    def fire_timers(self, now: int) -> int:
        """Append the event of every due timer to its execution's inbox and drive it."""
        claimed = self.scripts.claim_due(keys=[keys.TIMERS], args=[now, BATCH, CLAIM_MS])
        tags = []
        for member, score in zip(claimed[::2], claimed[1::2], strict=True):
            entry = json.loads(member)
            tag = entry["tag"]
            pipe = self.state.pipeline(transaction=False)
            pipe.zadd(keys.WAKE, {tag: now + self.settings.wake_after_ms})
            self.scripts.append(keys=[keys.execution(tag), keys.inbox(tag)], args=[json.dumps(entry["event"])], client=pipe)
            self.scripts.release_if(keys=[keys.TIMERS], args=[member, score], client=pipe)
            pipe.execute()
            tags.append(tag)
        self.publish_drives(tags)
        return len(tags)

    def rescue(self, now: int) -> int:
        """Re-drive executions whose inbox still holds events past their wake-up deadline."""
        claimed = self.scripts.claim_due(keys=[keys.WAKE], args=[now, BATCH, self.settings.wake_after_ms])
        if not claimed:
            return 0
        members = [m.decode() if isinstance(m, bytes) else m for m in claimed[::2]]
        scores = claimed[1::2]
        pipe = self.state.pipeline(transaction=False)
        for tag in members:
            pipe.llen(keys.inbox(tag))
        lengths = pipe.execute()
        redrive = [tag for tag, n in zip(members, lengths, strict=True) if n]
        pipe = self.state.pipeline(transaction=False)
        for tag, score, n in zip(members, scores, lengths, strict=True):
            if not n:
                self.scripts.release_if(keys=[keys.WAKE], args=[tag, score], client=pipe)
        pipe.execute()
        if redrive:
            logger.info("safety net: re-driving %d execution(s)", len(redrive))
        self.publish_drives(redrive)
        return len(members)

    def run(self) -> None:
        """Loop until SIGTERM/SIGINT."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        idle = self.settings.timers_poll_ms / 1000
        while not self.stopping:
            try:
                now = int(time.time() * 1000)
                busy = self.fire_timers(now) + self.rescue(now)
            except redis.RedisError as exc:
                logger.warning("timers: Redis error, retrying: %s", exc)
                busy = 0
                time.sleep(0.5)
            if not busy:
                time.sleep(idle)

    def _stop(self, *_: object) -> None:
        self.stopping = True


def run_timers(settings: Settings) -> None:
    """Run the timers loop in this process."""
    state = redis.Redis.from_url(for_redis_py(settings.redis_url))
    broker_url = for_redis_py(settings.effective_broker_url)
    broker = state if broker_url == for_redis_py(settings.redis_url) else redis.Redis.from_url(broker_url)
    Timers(state, broker, settings).run()
