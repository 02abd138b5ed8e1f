"""The throttle rule model: which buckets a request must fit in, profiles, rules files, chaos rules."""
from __future__ import annotations

import pytest

from common.throttle_rules import (
    ANY,
    ChaosRule,
    Rule,
    RulesError,
    RuleSet,
    Scope,
    decode_chaos,
    decode_rules,
    encode,
    parse_rules_document,
    profile,
)

RULES = RuleSet.of(
    [
        Rule(action=ANY, rate=2, burst=10),  # account, every action without its own rule
        Rule(action="StartExecution", rate=100, burst=100),
        Rule(action="StartExecution", rate=1, burst=1, target="acct-vip"),  # this account only
        Rule(action=ANY, rate=7, burst=7, target="acct-slow"),
        Rule(action="StartExecution", rate=50, burst=10, scope=Scope.ACCESS_KEY),
        Rule(action="DescribeExecution", rate=3, burst=3, scope=Scope.FLOW, target="hot"),
    ]
)


@pytest.mark.parametrize(
    "action, account, key, flow, expected",
    [
        # no rule for ListFlows of its own: the account's `*` rule
        ("ListFlows", "a1", "k1", "", [("account", "", "*", "*")]),
        # an action rule beats `*` in the same scope; the access-key scope applies as well
        ("StartExecution", "a1", "k1", "f", [("account", "", "StartExecution", "*"), ("access_key", "k1", "StartExecution", "*")]),
        # a target rule beats the every-target rule
        ("StartExecution", "acct-vip", "k1", "f", [("account", "", "StartExecution", "acct-vip"), ("access_key", "k1", "StartExecution", "*")]),
        # target first, then action: the account's own `*` rule beats the every-account StartExecution rule
        ("StartExecution", "acct-slow", "k2", "", [("account", "", "*", "acct-slow"), ("access_key", "k2", "StartExecution", "*")]),
        # a flow rule applies only to the flow it names
        ("DescribeExecution", "a1", "k1", "hot", [("account", "", "*", "*"), ("flow", "hot", "DescribeExecution", "hot")]),
        ("DescribeExecution", "a1", "k1", "cold", [("account", "", "*", "*")]),
    ],
)
def test_most_specific_rule_per_scope_and_every_scope_applies(
    action: str, account: str, key: str, flow: str, expected: list[tuple[str, str, str, str]]
) -> None:
    got = [(b.scope.value, b.subject, b.rule.action, b.rule.target) for b in RULES.buckets(action, account, key, flow)]
    assert got == expected


def test_no_rules_no_buckets() -> None:
    assert RuleSet.of().buckets("StartExecution", "a", "k", "f") == []


def test_a_rule_with_the_same_id_replaces_the_earlier_one() -> None:
    rs = RuleSet.of([Rule(action="X", rate=1, burst=1), Rule(action="X", rate=5, burst=2)])
    assert [(r.rate, r.burst) for r in rs.rules] == [(5, 2)]


def test_cloud_profile_is_the_documented_quota() -> None:
    got = {(r.scope.value, r.action, r.target): (r.burst, r.rate) for r in profile("cloud")}
    assert got == {
        ("account", "StartExecution", "*"): (100, 100),
        ("account", "DescribeExecution", "*"): (50, 5),
        ("account", "GetExecutionHistory", "*"): (50, 5),
        ("account", "*", "*"): (10, 2),
    }
    with pytest.raises(RulesError):
        profile("aws")


def test_rules_document_with_profile_rules_and_chaos() -> None:
    rules, chaos = parse_rules_document(
        "profile: cloud\n"
        "rules:\n"
        "  - {action: StartExecution, rate: 20, burst: 5}\n"
        "  - {action: ListFlows, rate: 1, burst: 1, scope: access_key, target: LTAIx}\n"
        "chaos:\n"
        "  - {action: StartExecution, error: InternalServerError, rate: 0.05}\n"
    )
    merged = RuleSet.of(rules, chaos)
    start = [b.rule for b in merged.buckets("StartExecution", "a", "k", "")]
    assert [(r.rate, r.burst) for r in start] == [(20, 5)]  # the file's rule replaced the profile's
    assert merged.chaos_for("StartExecution") == ChaosRule(action="StartExecution", rate=0.05)
    assert merged.chaos_for("ListFlows") is None


@pytest.mark.parametrize(
    "text",
    [
        "rules: [{action: X, rate: 0, burst: 1}]",  # rate must be positive
        "rules: [{action: X, rate: 1, burst: 0}]",  # burst at least 1
        "rules: [{action: X, rate: 1, burst: 1, scope: region}]",
        "rules: [{action: X, rate: 1, burst: 1, colour: red}]",
        "chaos: [{action: X, error: NoSuchError, rate: 0.5}]",  # only documented codes
        "chaos: [{action: X, rate: 1.5}]",
        "limits: []",
        "[1, 2]",
        "rules: [",
    ],
)
def test_bad_rules_documents_are_refused(text: str) -> None:
    with pytest.raises(RulesError):
        parse_rules_document(text)


def test_stored_form_round_trips_and_garbage_is_skipped() -> None:
    rule = Rule(action="StartExecution", rate=50, burst=10, scope=Scope.FLOW, target="f1")
    chaos = ChaosRule(action=ANY, error="ResourceThrottled", rate=0.25)
    assert decode_rules({rule.id.encode(): encode(rule).encode(), b"bad": b"{"}) == [rule]
    assert decode_chaos({b"*": encode(chaos), b"x": '{"action":"x","rate":7}'}) == [chaos]
