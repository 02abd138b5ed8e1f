"""Scenario 7 (issue 17): scenario 2 with the state on a 3-primary Redis Cluster, beside one Redis.

The same batch as scenario 2 (the 10-state Pass flow, 2 workers, the front doors of `--front-doors`)
three times, each on a fresh service:

- one redis-server holding the state and the Celery broker (scenario 2 as it is: the single-Redis line);
- one redis-server for the state, another for the broker (what the cluster set-up has beside it);
- the state on a Redis Cluster of 3 primaries (openfnf/rediscluster.py, AOF on every node), the
  broker on a redis-server of its own (kombu cannot use a cluster).

Each gives completed/s and the CPU each redis-server spent per completed execution (/proc). What one
Redis can carry is about one core over its CPU per execution; with the state on a cluster, the limit
is the busiest shard's core, so the busiest shard's share of the state's CPU says how far the cluster
moves that ceiling once the shards run on machines of their own.
"""
from __future__ import annotations

import os

from bench.completion import Batch, ours_batch
from bench.context import Ctx
from bench.flows import fdl_pass_chain
from bench.table import Row

SHARDS = 3
SCENARIO = "7 Redis Cluster"


def _shards(b: Batch) -> list[float]:
    """CPU µs per completed execution of each shard, in node order."""
    c = b.cpu_us or {}
    return [c[k] for k in sorted((k for k in c if k.startswith("shard")), key=lambda k: int(k[5:]))]


def run(ctx: Ctx) -> None:
    """Completed/s and redis-server CPU per execution: one Redis, state + broker Redis, cluster + broker Redis."""
    n = ctx.sizes.pass10
    flow = fdl_pass_chain(10)

    def rate(b: Batch) -> float:
        return b.ended.rate()

    one = ctx.best("cluster part: one Redis", lambda: ours_batch(ctx, "cl-one", flow, n, workers=2), rate)
    split = ctx.best("cluster part: state Redis + broker Redis", lambda: ours_batch(ctx, "cl-split", flow, n, workers=2, broker=True), rate)
    clu = ctx.best(f"cluster part: {SHARDS}-primary cluster + broker Redis",
                   lambda: ours_batch(ctx, "cl-cluster", flow, n, workers=2, cluster=SHARDS), rate)  # fmt: skip
    c1, c2, c3 = one.cpu_us or {}, split.cpu_us or {}, clu.cpu_us or {}
    shards = _shards(clu)
    state_sum = sum(shards)
    busiest = max(shards) if shards else 0.0
    share = busiest / state_sum if state_sum > 0 else 0.0
    keys: list[int] = (clu.extra or {}).get("shard_keys", [])
    rep = ctx.report
    base = f"10-state Pass, N={n}, 2 workers"
    rep.add(Row(SCENARIO, f"completed/s, one Redis (state and broker): the single-Redis line, {base}", "/s", one.ended.rate(),
                note=f"redis-server {c1.get('redis', 0):.0f} µs CPU per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, "completed/s, state on one Redis, broker on another", "/s", split.ended.rate(), None, one.ended.rate(),
                "one Redis, this run", note=f"state {c2.get('state', 0):.0f} µs, broker {c2.get('broker', 0):.0f} µs per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, f"completed/s, state on a {SHARDS}-primary cluster, broker on its own Redis", "/s", clu.ended.rate(), None,
                one.ended.rate(), "one Redis, this run",
                note=f"shards {', '.join(f'{v:.0f}' for v in shards)} µs, broker {c3.get('broker', 0):.0f} µs per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, "state redis-server CPU per execution, all shards together", "µs", state_sum, None, c2.get("state"),
                "one state Redis, this run", higher=False))  # fmt: skip
    rep.add(Row(SCENARIO, "state redis-server CPU per execution, busiest shard", "µs", busiest, None, c2.get("state"),
                "one state Redis, this run", higher=False,
                note=f"{100 * share:.0f}% of the shards' CPU; an even split is {100 / SHARDS:.0f}%"))  # fmt: skip
    if keys:
        total = max(1, sum(keys))
        rep.add(Row(SCENARIO, "keys on the busiest shard after the run", "%", 100 * max(keys) / total, higher=False,
                    note="keys per shard " + ", ".join(f"{k:,}" for k in keys)))  # fmt: skip
    one_ceiling = 1e6 / c1["redis"] if c1.get("redis") else None
    state_ceiling = 1e6 / c2["state"] if c2.get("state") else None
    cluster_ceiling = 1e6 / busiest if busiest else None
    broker_ceiling = 1e6 / c3["broker"] if c3.get("broker") else None
    rep.add(Row(SCENARIO, "ceiling of one Redis (state and broker): one core / its CPU per execution", "/s", one_ceiling))
    rep.add(Row(SCENARIO, "ceiling of the state with each shard on a core of its own: one core / the busiest shard's CPU per execution",
                "/s", cluster_ceiling, None, state_ceiling, "one state Redis's ceiling, this run",
                note=f"the broker Redis's own ceiling {f'{broker_ceiling:,.0f}/s' if broker_ceiling else 'not measurable (under one clock tick)'}"))  # fmt: skip
    rep.note(
        f"Scenario 7 (Redis Cluster): on this {os.cpu_count()}-core machine the {SHARDS} shards, the broker, the front doors, the workers and the "
        "load client share the same cores, so a cluster cannot outrun one Redis here: its completed/s shows what the extra "
        "processes and the per-node round trips cost, not a gain. What the cluster moves is the ceiling the state Redis puts on "
        "a deployment whose shards each have a core (a machine) of their own: one core over the busiest shard's CPU per execution "
        "instead of over the single server's. The single-Redis line is the first row (state and broker on one server, scenario 2 "
        "as run by `openfnf dev`); past it, the broker moves to a server of its own (its ceiling is in the last row's note) and "
        "the state's CPU splits over the shards."
    )
    ctx.facts["cluster"] = {
        "one": one.ended.rate(), "split": split.ended.rate(), "cluster": clu.ended.rate(),
        "cpu_one": c1.get("redis", 0.0), "cpu_state": c2.get("state", 0.0), "cpu_broker_split": c2.get("broker", 0.0),
        "shards": shards, "cpu_broker_cluster": c3.get("broker", 0.0), "share": share, "keys": keys,
        "ceiling_one": one_ceiling, "ceiling_state": state_ceiling, "ceiling_cluster": cluster_ceiling,
    }  # fmt: skip

