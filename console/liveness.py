"""What the overview shows about the processes: worker and timers heartbeats in Redis, and this
front door's ResourceThrottled answers (its Prometheus counter, read in process)."""
from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

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


def throttled_counts() -> dict[str, int]:
    """ResourceThrottled answers of this front door process since it started, by action."""
    out: dict[str, int] = {}
    for metric in REGISTRY.collect():
        if metric.name == "openfnf_api_throttled":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.value:
                    out[sample.labels.get("action", "?")] = int(sample.value)
    return out
