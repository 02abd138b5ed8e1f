"""The running-executions count of an account (issue 7's cap), spread over `Settings.running_shards` keys (issue 17).

On a Redis Cluster one key per account put every start's INCR and every end's DECR of that account on one
shard. The count is now the sum of `n` keys (keys.running(account, k)), each in its own slot. An execution
counts itself in the shard its tag picks (`key_for`), so its INCR at the start and its DECR at the end hit
the same key with no state kept; the sum is what every reader uses (`queue_total` + `total`, or
`read_total` / `read_total_sync`): one MGET on a single server, one GET per shard on a cluster (a
pipeline sends them in one round trip per node).

How exact the cap is: the admission reads the sum, and the claim counts the execution a round trip
later, as before the count was spread; so starts admitted at the same moment can overshoot the cap by
how many are in flight between their admission and their claim. On one server the MGET reads every
shard at one instant; on a cluster each node answers at its own instant, so starts and ends landing
during that round trip may be seen on one shard and not on another (the same in-flight bound).
"""
from __future__ import annotations

from typing import Any

from common import keys
from common.records import as_str
from common.redisclients import is_cluster


def key_for(account: str, tag: str, n: int) -> str:
    """The shard execution `tag` counts itself in (its start's INCR and its end's DECR)."""
    return keys.running(account, keys.partition(tag, n))


def shard_keys(account: str, n: int) -> list[str]:
    """Every shard of the account's count."""
    return [keys.running(account, k) for k in range(n)]


def queue_total(pipe: Any, account: str, n: int, cluster: bool) -> int:
    """Queue the reads of every shard on a pipeline; how many answers they take (give those to `total`).
    A single server reads them with one MGET; a cluster client refuses an MGET across slots, so one GET each."""
    if not cluster:
        pipe.mget(shard_keys(account, n))
        return 1
    for key in shard_keys(account, n):
        pipe.get(key)
    return n


def total(answers: list[Any]) -> int:
    """The count from the answers of `queue_total`'s commands (a missing shard counts 0)."""
    values = [v for a in answers for v in (a if isinstance(a, list) else [a])]
    return sum(int(as_str(v) or 0) for v in values)


def read_total_sync(client: Any, account: str, n: int) -> int:
    """The account's running count now (sync client: workers, CLI, bench, tests)."""
    pipe = client.pipeline(transaction=False)
    queue_total(pipe, account, n, is_cluster(client))
    return total(list(pipe.execute()))


async def read_total(client: Any, account: str, n: int) -> int:
    """The account's running count now (asyncio client)."""
    pipe = client.pipeline(transaction=False)
    queue_total(pipe, account, n, is_cluster(client))
    return total(list(await pipe.execute()))
