"""Console sign-in: server-side sessions (a Redis key with a TTL behind an opaque cookie), CSRF tokens,
and the sign-in rate limit."""
from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from common import keys
from common.credentials import AccessKey

COOKIE = "openfnf_console"  # the session id
PRE_COOKIE = "openfnf_console_pre"  # before sign-in: the CSRF token of the sign-in form (double submit)
COOKIE_PATH = "/console"


@dataclass(frozen=True)
class Session:
    """A signed-in session: whose key, its CSRF token, when it started (ms)."""

    id: str
    key_id: str
    csrf: str
    started: int


def new_token() -> str:
    """An unguessable token (session id, CSRF token)."""
    return secrets.token_urlsafe(32)


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def secret_matches(key: AccessKey | None, secret: str) -> bool:
    """Whether this key exists, is enabled and has this secret (compared in constant time)."""
    if key is None or not key.enabled:
        hmac.compare_digest(secret.encode(), b"x" * max(1, len(secret)))  # same work either way
        return False
    return hmac.compare_digest(key.secret.encode(), secret.encode())


class Sessions:
    """Sessions in Redis (redis.asyncio client)."""

    def __init__(self, redis: Any, lifetime_seconds: int, attempts_per_minute: int) -> None:
        self.redis = redis
        self.lifetime = lifetime_seconds
        self.attempts = attempts_per_minute

    async def create(self, key_id: str, now: int) -> Session:
        """A new session for this key, living `lifetime` seconds from now."""
        session = Session(new_token(), key_id, new_token(), now)
        body = json.dumps({"key": key_id, "csrf": session.csrf, "started": now})
        await self.redis.set(keys.console_session(session.id), body, ex=self.lifetime)
        return session

    async def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown, expired or signed out)."""
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.redis.get(keys.console_session(session_id))
        if raw is None:
            return None
        doc = json.loads(raw)
        return Session(session_id, str(doc["key"]), str(doc["csrf"]), int(doc["started"]))

    async def end(self, session_id: str) -> None:
        """Sign out: the session is gone at once."""
        await self.redis.delete(keys.console_session(session_id))

    async def attempt_allowed(self, client: str, now: int) -> bool:
        """Count one sign-in attempt from `client`; False once it made more than allowed this minute."""
        key = keys.console_signin_attempts(client, now // 60_000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
        return int(count) <= self.attempts
