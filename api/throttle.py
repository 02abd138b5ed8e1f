"""Admission at the front door: GCRA rules, the running-executions cap and chaos, after authorisation.

Rules are cached in-process and refreshed from Redis in the background, so a request no rule (and
no running cap) applies to costs no Redis round trip, and one a rule applies to costs exactly one
(gcra.lua, beside the reads of the running count's shards, common/runcount.py).
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.credentials import AccessKey
from common import keys, runcount
from common.errors import FnfError, ResourceThrottled, catalogue
from common.redisclients import is_cluster
from common.scripts import Scripts
from common.settings import Settings
from common.throttle_rules import (
    ChaosRule,
    Rule,
    RuleSet,
    decode_chaos,
    decode_rules,
    encode,
    parse_rules_document,
    profile,
)

logger = logging.getLogger(__name__)

START = "StartExecution"
RUNNING_CAP_ACTIONS = frozenset({START, "RedriveExecution"})  # actions that make an execution run: the running cap applies (issue 18 adds the redrive)
NAME_IS_FLOW = frozenset({"CreateFlow", "DescribeFlow", "UpdateFlow", "DeleteFlow"})  # flow named by `Name`

ADMITTED, THROTTLED, CAPPED = 0, 1, 2  # verdicts: gcra.lua's first two, the running cap's (judged beside it)


@dataclass(frozen=True)
class Check:
    """What one request is checked against: gcra.lua's buckets and ARGV, and the running cap."""

    keys: list[str]  # the GCRA buckets ([]: no rule applies, no script call)
    args: list[Any]
    cap: int  # the running-executions cap checked (0: none)
    account: str
    shards: int = 1  # Settings.running_shards: the keys the running count is read from (common/runcount.py)

    def queue(self, pipe: Any, scripts: Scripts, cluster: bool) -> int:
        """Queue the check's commands on a pipeline (the running count's shards, then gcra.lua); how many
        answers they take, for `verdict`."""
        reads = runcount.queue_total(pipe, self.account, self.shards, cluster) if self.cap > 0 else 0
        if self.keys:
            scripts.queue(pipe, "gcra", self.keys, self.args)
        return reads + (1 if self.keys else 0)

    def verdict(self, answers: list[Any]) -> tuple[int, int, bool]:
        """(verdict, value, charged) from the answers of `queue`'s commands: THROTTLED with the retry-after
        ms, CAPPED with the running count, else ADMITTED; `charged` when gcra.lua charged the buckets (give
        the charge back with gcra_refund.lua if the request is refused after all)."""
        at = 0
        running = 0
        if self.cap > 0:
            reads = len(answers) - (1 if self.keys else 0)
            running, at = runcount.total(answers[:reads]), reads
        verdict, value = (int(answers[at][0]), int(answers[at][1])) if self.keys else (ADMITTED, 0)
        charged = bool(self.keys) and verdict == ADMITTED
        if verdict == ADMITTED and self.cap > 0 and running >= self.cap:
            return CAPPED, running, charged
        return verdict, value, charged


def flow_of(action: str, params: dict[str, str]) -> str:
    """The flow a request names (for flow-scoped rules), or ""."""
    return params.get("FlowName") or (params.get("Name", "") if action in NAME_IS_FLOW else "")


def seed_rules(settings: Settings) -> tuple[list[Rule], list[ChaosRule]]:
    """The rules the settings seed at start: the profile's, then the rules file's (which win)."""
    rules: list[Rule] = list(profile(settings.throttle_profile)) if settings.throttle_profile else []
    chaos: list[ChaosRule] = []
    if settings.throttle_file is not None:
        path = Path(settings.throttle_file)
        more, chaos = parse_rules_document(path.read_text(encoding="utf-8"), str(path))
        rules += more
    return rules, chaos


def chaos_error(rule: ChaosRule) -> FnfError:
    """The documented error a chaos rule answers with."""
    if rule.error == ResourceThrottled.code:
        return ResourceThrottled(1000)  # milliseconds, as the SDK reads x-acs-retry-after
    return catalogue()[rule.error]()


class Limiter:
    """The front door's admission check; one per process, shared by every request."""

    def __init__(self, redis: Any, settings: Settings, rng: random.Random | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.rng = rng or random.Random(settings.chaos_seed)  # unseeded (None): from the OS
        self.rules = RuleSet.of()
        self._scripts: Scripts | None = None  # for `admit` (the front door queues its own, api/admission.py)
        self._seen: tuple[dict[Any, Any], dict[Any, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Seed the configured rules into Redis, load every rule, then keep them fresh in the background."""
        rules, chaos = seed_rules(self.settings)
        if rules or chaos:
            pipe = self.redis.pipeline(transaction=False)
            for rule in rules:
                pipe.hset(keys.THROTTLE_RULES, rule.id, encode(rule))
            for c in chaos:
                pipe.hset(keys.CHAOS_RULES, c.action, encode(c))
            await pipe.execute()
            logger.info("seeded %d throttle rules and %d chaos rules", len(rules), len(chaos))
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever(), name="throttle-rules")

    async def stop(self) -> None:
        """Stop the background refresh."""
        if self._task is not None:
            # The flag too: a cancel that lands while redis-py's wait_for has just finished its write
            # is swallowed there (Python 3.11's wait_for), and the loop must still end.
            self._stopping = True
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def refresh(self) -> None:
        """Read the rules from Redis (one round trip) and swap them in if they changed."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.THROTTLE_RULES)
        pipe.hgetall(keys.CHAOS_RULES)
        raw_rules, raw_chaos = await pipe.execute()
        if self._seen == (raw_rules, raw_chaos):
            return
        self._seen = (raw_rules, raw_chaos)
        rules, chaos = decode_rules(raw_rules), decode_chaos(raw_chaos)
        if len(rules) != len(raw_rules) or len(chaos) != len(raw_chaos):
            logger.warning("ignoring throttle entries in Redis that do not parse")
        self.rules = RuleSet.of(rules, chaos)
        logger.info("throttle rules now: %d rules, %d chaos rules", len(rules), len(chaos))

    async def _refresh_forever(self) -> None:
        period = self.settings.throttle_refresh_ms / 1000  # seconds
        failing = False
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await self.refresh()
                failing = False
            except Exception:  # keep the last rules; say so once, not every period
                if not failing:
                    logger.exception("cannot refresh throttle rules; keeping the last ones")
                failing = True

    async def admit(self, action: str, key: AccessKey, params: dict[str, str]) -> None:
        """Let the request through, or raise the error it gets: ResourceThrottled, or a chaos error.

        The front door itself runs the same steps with the nonce and its reads in one round trip
        (api/admission.py): check(), gcra.lua, judge(), then chaos().
        """
        check = self.check(action, key, params)
        if check is not None:
            if self._scripts is None:
                self._scripts = Scripts(self.redis)
            scripts = self._scripts
            cluster = is_cluster(self.redis)
            verdict, value, charged = check.verdict(await scripts.pipeline(lambda pipe: check.queue(pipe, scripts, cluster)))
            if charged and verdict == CAPPED:  # refused after all: the buckets give the charge back
                await scripts.gcra_refund(keys=check.keys, args=check.args)
            self.judge(check, verdict, value)
        self.chaos(action)

    def check(self, action: str, key: AccessKey, params: dict[str, str]) -> Check | None:
        """What this request is checked against, or None when no rule and no cap applies (no round trip)."""
        account = key.account
        buckets = self.rules.buckets(action, account, key.id, flow_of(action, params))
        cap = self.settings.max_running_executions if action in RUNNING_CAP_ACTIONS else 0
        if not buckets and cap <= 0:
            return None
        bucket_keys = [keys.gcra_bucket(account, b.scope.value, b.subject, action) for b in buckets]
        args: list[Any] = [len(buckets)]
        for b in buckets:
            args += [repr(b.rule.interval_us), b.rule.burst]
        return Check(bucket_keys, args, max(cap, 0), account, self.settings.running_shards)

    def judge(self, check: Check, verdict: int, value: int) -> None:
        """Raise ResourceThrottled for a THROTTLED or CAPPED verdict (Check.verdict); nothing when ADMITTED."""
        if verdict == THROTTLED:
            raise ResourceThrottled(value)
        if verdict == CAPPED:
            raise ResourceThrottled(
                self.settings.running_cap_retry_after_ms,
                message=(
                    f"The request is throttled: account {check.account} has {value} running executions, "
                    f"the limit is {check.cap}. Please try again later."
                ),
            )

    def chaos(self, action: str) -> None:
        """Raise the chaos error of `action`'s chaos rule on its share of the draws (after admission)."""
        chaos = self.rules.chaos_for(action)
        if chaos is not None and self.rng.random() < chaos.rate:
            raise chaos_error(chaos)
