"""The keys of 10,000 executions spread over a real 3-primary Redis Cluster (issue 17's proof): every
primary holds some, none more than half. Written through StartExecution's own claim path
(Store.claim_execution: the wake-up, the index entry, the claim script and the running count), the
way the front door writes them, many claims in flight at once."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.redisclients import async_state_client
from common.settings import Settings
from common.store import Store
from tests.rediscluster import Cluster, start_cluster

COUNT = 10_000
IN_FLIGHT = 200


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("spread-cluster")), 3)
    try:
        yield c
    finally:
        c.stop()


async def test_the_keys_of_10000_executions_spread_over_all_three_primaries(cluster: Cluster) -> None:
    settings = Settings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
    state = async_state_client(settings, max_connections=IN_FLIGHT)
    store = Store(state, settings)
    flow = {"Id": "flow-id-spread", "Name": "spread", "Type": "FDL"}
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def claim(i: int) -> bool:
        async with sem:
            claimed = await store.claim_execution(
                account="1234567890", flow=flow, name=f"e{i}", raw_input=json.dumps({"n": i}), input_obj={"n": i},
                def_id="d1", qualifier="", callback="", now=1_700_000_000_000 + i,
            )  # fmt: skip
            return bool(claimed.created)

    try:
        created = await asyncio.gather(*(claim(i) for i in range(COUNT)))
    finally:
        await state.aclose()
    assert all(created)
    primaries = cluster.primaries()
    sizes = [int(n.client().dbsize()) for n in primaries]
    assert len(sizes) == 3 and sum(sizes) >= 2 * COUNT, sizes  # a record and an inbox per execution at least
    print(f"keys per primary: {sizes}, busiest {max(sizes) / sum(sizes):.1%}")
    assert all(s > 0 for s in sizes) and max(sizes) <= sum(sizes) / 2, sizes
