"""Throttling and chaos rules: the model the CLI writes to Redis and every front door reads (pure)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ANY = "*"  # as an action: every action without a rule of its own; as a target: each caller its own bucket


class Scope(StrEnum):
    """Who shares one bucket: an account, one access key, or one flow (of an account)."""

    ACCOUNT = "account"
    ACCESS_KEY = "access_key"
    FLOW = "flow"


# Errors chaos may inject: documented codes whose message needs no argument.
CHAOS_ERRORS = ("InternalServerError", "ResourceThrottled", "ConcurrentUpdateError", "TaskInvalidState")


class RulesError(ValueError):
    """A rule, a chaos rule or a rules file that cannot be used."""


class Rule(BaseModel):
    """A GCRA rule: `rate` requests per second sustained, `burst` at once, per bucket."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str = Field(min_length=1)
    rate: float = Field(gt=0)  # requests per second
    burst: int = Field(ge=1)  # requests accepted at once from a full bucket
    scope: Scope = Scope.ACCOUNT
    target: str = ANY  # account id, access key id or flow name; `*` = every one, each its own bucket

    @property
    def id(self) -> str:
        """The rule's identity: one rule per scope, action and target."""
        return f"{self.scope.value}/{self.action}/{self.target}"

    @property
    def interval_us(self) -> float:
        """GCRA emission interval in microseconds (the Redis TIME unit the script works in)."""
        return 1_000_000 / self.rate


class ChaosRule(BaseModel):
    """Fault injection: answer `rate` (0..1) of an action's requests with a documented error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str = Field(min_length=1)
    error: str = "InternalServerError"
    rate: float = Field(gt=0, le=1)

    @field_validator("error")
    @classmethod
    def _documented(cls, value: str) -> str:
        if value not in CHAOS_ERRORS:
            raise ValueError(f"error must be one of {', '.join(CHAOS_ERRORS)}")
        return value


@dataclass(frozen=True)
class Bucket:
    """One bucket a request must fit in: which scope and subject it belongs to, and its rule."""

    scope: Scope
    subject: str  # "" for the account scope (the account is in the key), else key id or flow name
    rule: Rule


@dataclass(frozen=True)
class RuleSet:
    """Every rule and chaos rule, indexed for the per-request lookup (a few dict reads)."""

    rules: tuple[Rule, ...] = ()
    chaos: tuple[ChaosRule, ...] = ()
    _index: dict[tuple[Scope, str, str], Rule] = field(default_factory=dict, compare=False, repr=False)
    _chaos: dict[str, ChaosRule] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, rules: Iterable[Rule] = (), chaos: Iterable[ChaosRule] = ()) -> RuleSet:
        """A rule set; a later rule with the same id replaces an earlier one."""
        by_id = {r.id: r for r in rules}
        by_action = {c.action: c for c in chaos}
        index = {(r.scope, r.action, r.target): r for r in by_id.values()}
        ordered = tuple(sorted(by_id.values(), key=lambda r: (list(Scope).index(r.scope), r.action, r.target)))
        return cls(ordered, tuple(sorted(by_action.values(), key=lambda c: c.action)), index, by_action)

    def buckets(self, action: str, account: str, key_id: str, flow: str) -> list[Bucket]:
        """The buckets a request must fit in: per scope, the most specific rule (target, then action)."""
        if not self._index:
            return []
        out: list[Bucket] = []
        for scope, subject in ((Scope.ACCOUNT, account), (Scope.ACCESS_KEY, key_id), (Scope.FLOW, flow)):
            if not subject:  # e.g. a flow rule and an action that names no flow
                continue
            rule = (
                self._index.get((scope, action, subject))
                or self._index.get((scope, ANY, subject))
                or self._index.get((scope, action, ANY))
                or self._index.get((scope, ANY, ANY))
            )
            if rule is not None:
                out.append(Bucket(scope, "" if scope is Scope.ACCOUNT else subject, rule))
        return out

    def chaos_for(self, action: str) -> ChaosRule | None:
        """The chaos rule for an action (its own, else the `*` one), if any."""
        return self._chaos.get(action) or self._chaos.get(ANY)


# Spec 2.5, the cloud's documented token buckets (per account): bucket size = burst, refill = rate.
PROFILES: dict[str, tuple[Rule, ...]] = {
    "none": (),
    "cloud": (
        Rule(action="StartExecution", burst=100, rate=100),
        Rule(action="DescribeExecution", burst=50, rate=5),
        Rule(action="GetExecutionHistory", burst=50, rate=5),
        Rule(action=ANY, burst=10, rate=2),
    ),
}


def profile(name: str) -> tuple[Rule, ...]:
    """The rules of a named profile (`none`, `cloud`)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise RulesError(f"unknown throttle profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def parse_rules_document(text: str, source: str = "rules file") -> tuple[list[Rule], list[ChaosRule]]:
    """Rules and chaos rules from a YAML (or JSON) document `{rules: [...], chaos: [...]}`."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"rules", "chaos", "profile"}:
        raise RulesError(f"{source}: expected a mapping with `rules`, `chaos` and/or `profile`")
    rules = list(profile(str(doc["profile"]))) if doc.get("profile") else []
    try:
        rules += [Rule.model_validate(r) for r in doc.get("rules") or []]
        chaos = [ChaosRule.model_validate(c) for c in doc.get("chaos") or []]
    except ValidationError as exc:
        raise RulesError(f"{source}: {exc}") from None
    return rules, chaos


def encode(rule: Rule | ChaosRule) -> str:
    """The JSON a rule is stored as (the value of its Redis hash field)."""
    return json.dumps(rule.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)


def decode_rules(raw: dict[Any, Any]) -> list[Rule]:
    """Rules from the Redis hash; an entry that does not parse is left out (and reported by the caller)."""
    out = []
    for value in raw.values():
        try:
            out.append(Rule.model_validate_json(value))
        except ValidationError:
            continue
    return out


def decode_chaos(raw: dict[Any, Any]) -> list[ChaosRule]:
    """Chaos rules from the Redis hash, skipping entries that do not parse."""
    out = []
    for value in raw.values():
        try:
            out.append(ChaosRule.model_validate_json(value))
        except ValidationError:
            continue
    return out
