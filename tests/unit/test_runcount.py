"""The running count spread over shards (common/runcount.py, issue 17) on fakeredis: which shard an execution
counts in, the sum read with one MGET or one GET per shard, and the cap's verdict from it (api/throttle.py)."""
from __future__ import annotations

import random
import threading

import fakeredis
import pytest

from api.throttle import ADMITTED, CAPPED, THROTTLED, Check
from common import keys, runcount

ACCOUNT = "1234567890"
N = 8


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_an_execution_counts_in_the_shard_its_tag_picks_at_start_and_end() -> None:
    tags = [keys.execution_tag("flow-id", f"e{i}") for i in range(2000)]
    picked = [runcount.key_for(ACCOUNT, t, N) for t in tags]
    assert picked == [runcount.key_for(ACCOUNT, t, N) for t in tags]  # the end finds the start's key: no state kept
    assert set(picked) == set(runcount.shard_keys(ACCOUNT, N))  # every shard is used
    assert max(picked.count(k) for k in set(picked)) < 2 * len(tags) / N  # evenly enough
    assert runcount.shard_keys(ACCOUNT, 1) == [keys.running(ACCOUNT)]  # one shard: the one key of before


@pytest.mark.parametrize("cluster", [False, True], ids=["one MGET", "a GET per shard"])
def test_the_sum_over_the_shards(r: fakeredis.FakeRedis, cluster: bool) -> None:
    tags = [keys.execution_tag("f", f"e{i}") for i in range(50)]
    for t in tags:
        r.incr(runcount.key_for(ACCOUNT, t, N))
    for t in tags[:20]:
        r.decr(runcount.key_for(ACCOUNT, t, N))
    r.incr(runcount.key_for("other", tags[0], N))  # another account's count is its own
    pipe = r.pipeline(transaction=False)
    pipe.get("before")
    reads = runcount.queue_total(pipe, ACCOUNT, N, cluster)
    pipe.get("after")
    answers = pipe.execute()
    assert reads == (N if cluster else 1) and len(answers) == reads + 2
    assert runcount.total(answers[1 : 1 + reads]) == 30
    assert runcount.read_total_sync(r, ACCOUNT, N) == 30
    assert runcount.read_total_sync(r, "nobody", N) == 0  # no key yet: zero


async def test_the_sum_from_an_asyncio_client() -> None:
    client = fakeredis.FakeAsyncRedis()
    await client.incrby(keys.running(ACCOUNT, 3), 4)
    await client.incrby(keys.running(ACCOUNT, 0), 2)
    assert await runcount.read_total(client, ACCOUNT, N) == 6
    await client.aclose()


def test_starts_and_ends_from_many_threads_add_up(r: fakeredis.FakeRedis) -> None:
    def churn(seed: int) -> None:
        rng = random.Random(seed)
        tags = [keys.execution_tag("f", f"t{seed}-{i}") for i in range(200)]
        for t in tags:
            r.incr(runcount.key_for(ACCOUNT, t, N))
        for t in rng.sample(tags, 150):
            r.decr(runcount.key_for(ACCOUNT, t, N))

    threads = [threading.Thread(target=churn, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runcount.read_total_sync(r, ACCOUNT, N) == 8 * 50
    assert all(int(v or 0) >= 0 for v in r.mget(runcount.shard_keys(ACCOUNT, N)))  # each end gave back its own start


def _check(buckets: int, cap: int) -> Check:
    return Check([f"bucket{i}" for i in range(buckets)], [buckets], cap, ACCOUNT, N)


def test_the_cap_is_judged_from_the_sum_beside_gcra(r: fakeredis.FakeRedis) -> None:
    for k in range(N):
        r.set(keys.running(ACCOUNT, k), 1)  # 8 running
    pipe = r.pipeline(transaction=False)
    reads = runcount.queue_total(pipe, ACCOUNT, N, True)
    shard_answers = pipe.execute()
    assert reads == N
    # The cap alone: no script answer follows the reads.
    assert _check(0, 9).verdict(shard_answers) == (ADMITTED, 0, False)
    assert _check(0, 8).verdict(shard_answers) == (CAPPED, 8, False)
    # With a rule: gcra.lua's answer follows; a charge the cap refuses is reported charged (to give back).
    assert _check(1, 8).verdict([*shard_answers, [0, 0]]) == (CAPPED, 8, True)
    assert _check(1, 9).verdict([*shard_answers, [0, 0]]) == (ADMITTED, 0, True)
    assert _check(1, 8).verdict([*shard_answers, [1, 250]]) == (THROTTLED, 250, False)  # throttled first, nothing charged
    assert _check(1, 0).verdict([[1, 250]]) == (THROTTLED, 250, False)  # no cap: no reads
