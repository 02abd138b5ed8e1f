"""Flow versions (immutable definition snapshots) and aliases (weighted routing to one or two versions)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common import keys
from common.scripts import Scripts


@dataclass(frozen=True)
class Outcome:
    """A script's {'ok', value} / {'error', what} answer."""

    ok: bool
    value: str


def _outcome(raw: list[Any]) -> Outcome:
    status = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    value = raw[1] if len(raw) > 1 else b""
    return Outcome(status == "ok", value.decode() if isinstance(value, bytes) else str(value))


class VersionStore:
    """Versions and aliases of the flows of one Redis (redis.asyncio client)."""

    def __init__(self, redis: Any, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def publish(self, account: str, flow: str, description: str, now: int) -> int:
        """Snapshot the flow's definition as a new version; 0 if the flow does not exist."""
        return int(await self.scripts.publish_version(keys=keys.flow_keys(account, flow), args=[now, description]))

    async def get(self, account: str, flow: str, version: str) -> dict[str, Any] | None:
        """One version, or None."""
        raw = await self.redis.hget(keys.flow_versions(account, flow), version) if version.isdigit() else None
        return json.loads(raw) if raw else None

    async def all(self, account: str, flow: str) -> list[dict[str, Any]]:
        """Every version of a flow, in version order."""
        raw = await self.redis.hgetall(keys.flow_versions(account, flow))
        found = [json.loads(v) for k, v in raw.items() if not (k.decode() if isinstance(k, bytes) else k).startswith("#")]
        return sorted(found, key=lambda v: int(v["Version"]))

    async def delete(self, account: str, flow: str, version: str) -> Outcome:
        """Delete a version unless an alias routes to it."""
        return _outcome(await self.scripts.delete_version(keys=keys.flow_keys(account, flow), args=[version]))

    async def put_alias(
        self, account: str, flow: str, name: str, alias: dict[str, Any], versions: list[str], now: int, create: bool
    ) -> Outcome:
        """Create or update an alias atomically (the flow and every routed version must exist)."""
        args = ["create" if create else "update", name, json.dumps(alias), now, *(versions or [""])]
        return _outcome(await self.scripts.put_alias(keys=keys.flow_keys(account, flow), args=args))

    async def alias(self, account: str, flow: str, name: str) -> dict[str, Any] | None:
        """One alias, or None."""
        raw = await self.redis.hget(keys.flow_aliases(account, flow), name)
        return json.loads(raw) if raw else None

    async def aliases(self, account: str, flow: str) -> list[dict[str, Any]]:
        """Every alias of a flow, by name."""
        raw = await self.redis.hgetall(keys.flow_aliases(account, flow))
        return sorted((json.loads(v) for v in raw.values()), key=lambda a: a["Name"])

    async def delete_alias(self, account: str, flow: str, name: str) -> bool:
        """Delete an alias; False if it did not exist."""
        return bool(await self.redis.hdel(keys.flow_aliases(account, flow), name))
