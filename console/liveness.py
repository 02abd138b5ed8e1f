"""What the overview shows about the processes: worker and timers heartbeats in Redis (the shared
429 counts are common/browse.py's throttled_per_minute)."""
from __future__ import annotations

from typing import Any

from common import keys

STALE_MS = 30_000  # a heartbeat older than this is shown as missing


async def liveness(redis: Any, now: int) -> list[dict[str, Any]]:
    """Every process that wrote a heartbeat in the last day: role, name, seconds since, alive."""
    raw = await redis.zrangebyscore(keys.HEARTBEATS, now - 24 * 3600 * 1000, "+inf", withscores=True)
    out = []
    for member, score in raw:
        text = member.decode() if isinstance(member, bytes) else str(member)
        role, _, name = text.partition(":")
        age = max(0, now - int(score))
        out.append({"role": role, "name": name, "seconds": age // 1000, "alive": age <= STALE_MS})
    return sorted(out, key=lambda p: (p["role"], p["name"]))
