"""Scenario 7 (issue 17): scenario 2 with the state on a 3-primary Redis Cluster, beside one Redis.

The same batch as scenario 2 (the 10-state Pass flow, 2 workers, the front doors of `--front-doors`)
three times, each on a fresh service, on the drive path (OPENFNF_PURE_AT_START_EVENTS=0: the Pass flow
stands in for a flow with tasks, as the broker and the workers are what the topologies differ in):

- one redis-server holding the state and the Celery broker (scenario 2 as it is: the single-Redis line);
- one redis-server for the state, another for the broker, both on TCP as a cluster's nodes are (the
  like-for-like line for the cluster: the same broker beside it, the same transport);
- the state on a Redis Cluster of 3 primaries (openfnf/rediscluster.py, AOF on every node), the
  broker on a redis-server of its own (kombu cannot use a cluster).

Each gives completed/s and the CPU each redis-server spent per completed execution (/proc). What one
Redis can carry is about one core over its CPU per execution; with the state on a cluster, the limit
is the busiest shard's core, so the busiest shard's share of the state's CPU says how far the cluster
moves that ceiling once the shards run on machines of their own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from bench.completion import WORKERS_RUN_IT, Batch, ours_batch
from bench.context import Ctx
from bench.flows import fdl_pass_chain
from bench.table import Row

SHARDS = 3
SCENARIO = "7 Redis Cluster"


IDLE_S = 3.0  # seconds each service sits idle before its batch: every process's background CPU (timers' polls, gossip)


@dataclass
class Cost:
    """One redis-server's CPU in one batch."""

    gross: float  # µs per completed execution, all of it
    idle_per_s: float  # µs per second while nothing ran (the background)
    net: float  # µs per completed execution, the background over the same window taken out

    @property
    def ceiling(self) -> float | None:
        """Executions per second one core carries: what the background leaves, over the net cost."""
        return (1e6 - self.idle_per_s) / self.net if self.net > 0 else None


def _cost(b: Batch, key: str) -> Cost:
    gross = (b.cpu_us or {}).get(key, 0.0)
    idle = (b.idle_us_per_s or {}).get(key, 0.0)
    net = max(0.0, gross - idle * b.window_s / max(1, b.ended.succeeded))
    return Cost(gross, idle, net)


def _fmt(c: Cost) -> str:
    return f"{c.net:.0f} µs ({c.gross:.0f} with the background of {c.idle_per_s / 1000:.1f} ms/s)"


def run(ctx: Ctx) -> None:
    """Completed/s and redis-server CPU per execution: one Redis, state + broker Redis, cluster + broker Redis."""
    n = ctx.sizes.pass10
    flow = fdl_pass_chain(10)

    def rate(b: Batch) -> float:
        return b.ended.rate()

    env = WORKERS_RUN_IT  # the drive path, which every flow with a task takes (a pure flow would end at its start)
    one = ctx.best("cluster part: one Redis", lambda: ours_batch(ctx, "cl-one", flow, n, workers=2, idle=IDLE_S, env=env), rate)
    split = ctx.best("cluster part: state Redis + broker Redis",
                     lambda: ours_batch(ctx, "cl-split", flow, n, workers=2, broker=True, idle=IDLE_S, env=env), rate)  # fmt: skip
    clu = ctx.best(f"cluster part: {SHARDS}-primary cluster + broker Redis",
                   lambda: ours_batch(ctx, "cl-cluster", flow, n, workers=2, cluster=SHARDS, idle=IDLE_S, env=env), rate)  # fmt: skip
    single, state, broker_split, broker = _cost(one, "redis"), _cost(split, "state"), _cost(split, "broker"), _cost(clu, "broker")
    shards = [_cost(clu, f"shard{i}") for i in range(SHARDS)]
    total = sum(c.net for c in shards)
    top = max(shards, key=lambda c: c.net)
    share = top.net / total if total > 0 else 0.0
    keys: list[int] = (clu.extra or {}).get("shard_keys", [])
    rep = ctx.report
    rep.add(Row(SCENARIO, f"completed/s, one Redis (state and broker): the single-Redis line, 10-state Pass, N={n}, 2 workers", "/s",
                one.ended.rate(), note=f"redis-server {_fmt(single)} per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, "completed/s, state on one Redis, broker on another", "/s", split.ended.rate(), None, one.ended.rate(),
                "one Redis, this run", note=f"state {_fmt(state)}, broker {_fmt(broker_split)} per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, f"completed/s, state on a {SHARDS}-primary cluster, broker on its own Redis", "/s", clu.ended.rate(), None,
                one.ended.rate(), "one Redis, this run",
                note=f"shards {', '.join(_fmt(c) for c in shards)}; broker {_fmt(broker)} per execution"))  # fmt: skip
    rep.add(Row(SCENARIO, "state redis-server CPU per execution, the shards together (background out)", "µs", total, None, state.net,
                "one state Redis, this run", higher=False))  # fmt: skip
    rep.add(Row(SCENARIO, "state redis-server CPU per execution, the busiest shard (background out)", "µs", top.net, None, state.net,
                "one state Redis, this run", higher=False,
                note=f"{100 * share:.0f}% of the shards' CPU; an even split is {100 / SHARDS:.0f}%"))  # fmt: skip
    ss: dict[str, dict[str, float]] = (clu.extra or {}).get("server_stats", {})
    ss_split: dict[str, dict[str, float]] = (split.extra or {}).get("server_stats", {})
    shard_stats = [ss.get(f"shard{i}", {}) for i in range(SHARDS)]
    reads = [st.get("reads", 0.0) for st in shard_stats]
    calls = [st.get("calls", 0.0) for st in shard_stats]
    state_stats = ss_split.get("state", {})
    rep.add(Row(SCENARIO, "round trips per execution the state's servers served (INFO stats total_reads_processed), the shards together",
                "", sum(reads), None, state_stats.get("reads"), "one state Redis, this run", higher=False,
                note="per shard " + ", ".join(f"{v:.2f}" for v in reads)))  # fmt: skip
    rep.add(Row(SCENARIO, "commands per execution on the state's servers (commandstats, those inside scripts too), the shards together",
                "", sum(calls), None, state_stats.get("calls"), "one state Redis, this run", higher=False,
                note="per shard " + ", ".join(f"{v:.1f}" for v in calls)))  # fmt: skip
    if keys:
        rep.add(Row(SCENARIO, "keys on the busiest shard after the run", "%", 100 * max(keys) / max(1, sum(keys)), higher=False,
                    note="keys per shard " + ", ".join(f"{k:,}" for k in keys)))  # fmt: skip
    rep.add(Row(SCENARIO, "ceiling of one Redis (state and broker): (one core - its background) / its CPU per execution", "/s", single.ceiling))
    rep.add(Row(SCENARIO, "ceiling of the state with each shard on a core of its own: the busiest shard's", "/s", top.ceiling, None,
                state.ceiling, "one state Redis's ceiling, this run",
                note=f"the broker Redis's own ceiling {f'{broker.ceiling:,.0f}/s' if broker.ceiling else 'not measurable'}"))  # fmt: skip
    rep.note(
        f"Scenario 7 (Redis Cluster): on this {os.cpu_count()}-core machine the {SHARDS} shards, the broker, the front doors, the workers and the "
        "load client share the same cores, so a cluster cannot outrun one Redis here: its completed/s shows what the extra "
        "processes and the per-node round trips cost, not a gain. What the cluster moves is the ceiling the state Redis puts on "
        "a deployment whose shards each have a core (a machine) of their own: one core over the busiest shard's CPU per execution "
        "instead of over the single server's. The single-Redis line is the first row (state and broker on one server, scenario 2 "
        "as run by `openfnf dev`); past it, the broker moves to a server of its own (its ceiling is in the last row's note) and "
        "the state's CPU splits over the shards. CPU per execution is each redis-server's /proc CPU over the batch less its "
        f"background (its CPU per second over {IDLE_S:.0f} s idle before the batch: the timers' polls of every partition, a "
        "cluster's gossip) over the same window; a ceiling takes the background off the core first."
    )
    if state_stats.get("reads") and total > 0 and state.net > 0:
        rep.note(
            f"Scenario 7, where the cluster's extra CPU goes: the shards together ran {sum(calls) / max(0.1, state_stats.get('calls', 0.0)):.2f}x "
            f"the commands of one state Redis but served {sum(reads) / state_stats['reads']:.1f}x its round trips "
            f"({sum(reads):.2f} against {state_stats['reads']:.2f} per execution) and spent {total / state.net:.1f}x its CPU: a "
            "redis-server pays for every round trip (reading, parsing, replying) besides the commands, and the batches the front "
            "door and the workers send one server arrive at the shards as more, smaller round trips. The busiest shard serves "
            f"{max(reads):.2f} per execution. Fewer round trips per node on the cluster clients is what would bring the busiest "
            "shard's CPU toward a third of one Redis's."
        )
    ctx.facts["cluster"] = {
        "one": one.ended.rate(), "split": split.ended.rate(), "cluster": clu.ended.rate(),
        "cpu_one": single.net, "cpu_state": state.net, "cpu_broker_split": broker_split.net,
        "shards": [c.net for c in shards], "cpu_broker_cluster": broker.net, "share": share, "keys": keys,
        "ceiling_one": single.ceiling, "ceiling_state": state.ceiling, "ceiling_cluster": top.ceiling,
        "reads_state": state_stats.get("reads", 0.0), "reads_shards": reads,
    }  # fmt: skip
