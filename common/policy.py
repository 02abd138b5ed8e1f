"""Access policies of access keys (used by the front door and the console): Allow/Deny statements on `fnf:<Action>` and `acs:fnf:...` resources.

A key without a policy may do everything on its own account's resources. A key with a policy may
do what some Allow statement matches and no Deny statement matches: an explicit Deny wins, and
nothing allowed means denied. `*` matches any run of characters and `?` one character; actions
match without regard to case (as RAM reads them), resources with it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class PolicyError(ValueError):
    """A policy document that cannot be used."""


@dataclass(frozen=True)
class Statement:
    """One statement: Allow or Deny these action patterns on these resource patterns."""

    allow: bool
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def matches(self, action: str, resource: str) -> bool:
        """Whether this statement speaks about `action` on `resource`."""
        return any(_pattern(a, True).fullmatch(action) for a in self.actions) and any(
            _pattern(r, False).fullmatch(resource) for r in self.resources
        )


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise PolicyError(f"{where} must be a non-empty string or list of strings")
    return tuple(items)


def _field(doc: Mapping[str, Any], name: str) -> Any:
    """A statement field by its lower-case name (the issue's YAML) or its RAM spelling (Effect, Action...)."""
    for key in (name, name.capitalize()):
        if key in doc:
            return doc[key]
    return None


def parse_policy(doc: Any, where: str = "policy") -> tuple[Statement, ...]:
    """Statements of a policy: a list of statements, or a RAM document `{"Statement": [...]}`."""
    if isinstance(doc, Mapping):
        doc = _field(doc, "statement")
    if not isinstance(doc, list):
        raise PolicyError(f"{where} must be a list of statements")
    out = []
    for i, raw in enumerate(doc):
        at = f"{where}[{i}]"
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{at} must be a mapping with effect, action and resource")
        if _field(raw, "condition") is not None:
            # Refused rather than ignored: an Allow applied without its condition would grant too much.
            raise PolicyError(f"{at}.condition is not supported")
        effect = _field(raw, "effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{at}.effect must be Allow or Deny, not {effect!r}")
        out.append(
            Statement(
                allow=effect == "Allow",
                actions=_strings(_field(raw, "action"), f"{at}.action"),
                resources=_strings(_field(raw, "resource"), f"{at}.resource"),
            )
        )
    return tuple(out)


def flow_arn(region: str, account: str, flow: str) -> str:
    """The resource name of a flow: `acs:fnf:{region}:{account}:flow/{name}`."""
    return f"acs:fnf:{region}:{account}:flow/{flow}"


def execution_arn(region: str, account: str, flow: str, execution: str) -> str:
    """The resource name of an execution: `acs:fnf:{region}:{account}:flow/{flow}/execution/{name}`."""
    return f"{flow_arn(region, account, flow)}/execution/{execution}"


def allowed(statements: Iterable[Statement] | None, action: str, resource: str) -> bool:
    """Whether a key with these statements (None: no policy) may do `fnf:<action>` on `resource`."""
    if statements is None:
        return True
    verdict = False
    for statement in statements:
        if statement.matches(f"fnf:{action}", resource):
            if not statement.allow:
                return False
            verdict = True
    return verdict
