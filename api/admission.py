"""What a signed request needs from Redis before its handler runs, in one round trip (issue 9).

DESIGN.md's order stays as it was: the signature (CPU), then the nonce (a replay is refused), then
the policy, then the limiter; a request refused at one step is not counted by the later ones. The
policy is a CPU check, so it is decided first, and then one pipeline carries:

- a SET NX that spends the SignatureNonce (keys.signature_nonce, in a slot of its own so nonces spread
  over a Cluster's shards), and, for a request the policy allows, the limiter's check (api/throttle.py
  Check): the reads of the running count's shards when the cap applies (common/runcount.py: one MGET,
  or one GET per shard on a cluster) and gcra.lua when a rule applies, which charges the buckets all
  or nothing. A request refused after the charge (a replay, or one over the running cap) is not
  charged: gcra_refund.lua gives the charge back (one more round trip, for those only).
- for StartExecution, the execution's wake-up (keys.pending_start), durable before the claim; not for a
  flow this process last ran to its end at its start (remember_pure, common/purestart.py).
- for StartExecution, the flow's head fields (Store.queue_flow_head): read in the same round trip,
  so the handler does not read the flow again. They are read fresh for every request, so an
  UpdateFlow or DeleteFlow done through another front door is seen by the next start; only the
  definition text is cached, by its content hash (immutable).

Then the verdicts are read in DESIGN.md's order: replayed nonce, policy, throttle, chaos.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from api.auth import Verified
from api.policy import authorize
from api.throttle import CAPPED, START, Limiter
from common import keys
from common.errors import AccessDenied, SignatureNonceUsed
from common.redisclients import is_cluster
from common.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check before its handler; what was read for it on the way."""

    flow_head: list[Any] | None = None  # StartExecution: the raw answer of Store.queue_flow_head (None: not read)
    execution_name: str = ""  # StartExecution: its name (chosen here if none was asked), the wake-up's if written
    woken: bool = False  # StartExecution: its wake-up (keys.pending_start) was written


# Flows whose last StartExecution through this process ran to its end at its start (common/purestart.py):
# their next start writes no wake-up with the admission, since it will most likely need none. When it does
# (the flow was updated, the start has a callback token), the claim writes the wake-up itself, first
# (Store.claim_execution with woken=False). Bounded: forgotten all at once when full.
_PURE_FLOWS: set[tuple[str, str]] = set()
_PURE_FLOWS_MAX = 10_000


def remember_pure(account: str, flow_name: str, pure: bool) -> None:
    """Record whether a StartExecution of this flow just ran it to its end at its start."""
    key = (account, flow_name)
    if not pure:
        _PURE_FLOWS.discard(key)
        return
    if key not in _PURE_FLOWS and len(_PURE_FLOWS) >= _PURE_FLOWS_MAX:
        _PURE_FLOWS.clear()
    _PURE_FLOWS.add(key)


def nonce_ttl_ms(verified: Verified, now_ms: int, skew_seconds: int) -> int:
    """How long to remember a nonce: until the request's own time leaves the window (no replay can pass after)."""
    return max(1, verified.signed_at_ms + skew_seconds * 1000 - now_ms + 1000)


async def admit(
    verified: Verified, action: str, params: dict[str, str], now_ms: int, *, store: Store, limiter: Limiter, runner: Any
) -> Admitted:
    """Spend the nonce, authorise, throttle (one round trip through `runner.pipeline`), or raise the error."""
    settings = limiter.settings
    key = verified.key
    denied: AccessDenied | None = None
    try:
        authorize(key.policy, action, params, settings.region, key.account)
    except AccessDenied as exc:
        denied = exc  # answered after the nonce is spent (a replay is refused as a replay first)
    check = limiter.check(action, key, params) if denied is None else None
    nonce_key = keys.signature_nonce(key.id, verified.nonce, key.account)
    ttl = nonce_ttl_ms(verified, now_ms, settings.timestamp_skew_seconds)
    flow_name = params.get("FlowName", "") if action == START and denied is None else ""
    # Named here when not asked, so its wake-up is written with the admission.
    execution_name = (params.get("ExecutionName") or str(uuid.uuid4())) if flow_name else ""
    pending = keys.pending_start(key.account, flow_name, execution_name) if flow_name else ""
    wake = bool(flow_name) and (key.account, flow_name) not in _PURE_FLOWS

    cluster = is_cluster(store.redis)
    answers = 0  # how many answers the limiter's check takes (after the nonce's)

    def build(pipe: Any) -> None:
        nonlocal answers
        pipe.set(nonce_key, b"1", nx=True, px=ttl)  # in its own slot (keys.signature_nonce)
        if check is not None:
            answers = check.queue(pipe, store.scripts, cluster)
        if flow_name:
            store.queue_flow_head(pipe, key.account, flow_name)
        if wake:
            # The safety net's wake-up, durable before the claim (the next round trip) can be seen on any
            # topology: if this process dies or the claim's answer is lost, the timers find the execution
            # through its flow and drive it; a start refused after this leaves a wake-up they drop.
            pipe.zadd(keys.wake_for(pending, settings.partitions), {pending: now_ms + settings.wake_after_ms})

    results = await runner.pipeline(build)
    replayed = not results[0]
    if check is not None:
        verdict, value, charged = check.verdict(results[1 : 1 + answers])
        if charged and (replayed or verdict == CAPPED):  # a request refused after the charge is not charged
            await store.scripts.gcra_refund(keys=check.keys, args=check.args)
    if replayed:
        logger.info("replayed signature nonce for access key %s", key.id)
        raise SignatureNonceUsed(verified.nonce)
    if denied is not None:
        raise denied
    if check is not None:
        limiter.judge(check, verdict, value)
    limiter.chaos(action)
    return Admitted(flow_head=results[1 + answers] if flow_name else None, execution_name=execution_name, woken=wake)

