"""Redis URLs in the two dialects: redis-py (`unix:///path`) and kombu (`redis+socket:///path`)."""
from __future__ import annotations


def for_kombu(url: str) -> str:
    """A Redis URL as Celery/kombu's broker_url expects it."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def for_redis_py(url: str) -> str:
    """A Redis URL as redis-py's from_url expects it."""
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://") :]
    if url.startswith("socket://"):
        return "unix://" + url[len("socket://") :]
    return url


def is_redis(url: str) -> bool:
    """Whether a broker URL names a Redis server (so drives can be pushed onto its lists directly)."""
    return url.startswith(("redis://", "rediss://", "unix://", "redis+socket://", "socket://"))


def same_redis(url: str, other: str) -> bool:
    """Whether two Redis URLs (either dialect) name the same server: the broker is then the state client."""
    return for_redis_py(url) == for_redis_py(other)
