"""`openfnf throttle` and `openfnf chaos`: the rules every front door applies, kept in Redis."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis

from common import keys
from common.redisclients import state_client
from common.settings import Settings
from common.throttle_rules import (
    ANY,
    CHAOS_ERRORS,
    ChaosRule,
    Rule,
    RuleSet,
    Scope,
    decode_chaos,
    decode_rules,
    encode,
)


def redis_url(url: str | None, data_dir: Path | None) -> str:
    """The Redis to use: --redis-url, else the one `openfnf dev --data-dir DIR` runs, else OPENFNF_REDIS_URL."""
    if url:
        return url
    if data_dir is not None:
        written = data_dir / "redis.url"  # `openfnf dev` writes it when its redis-server is up
        if written.exists():
            return written.read_text(encoding="utf-8").strip()
        sock = data_dir / "redis.sock"
        if sock.exists():
            return f"unix://{sock.resolve()}"
        raise click.UsageError(f"no running `openfnf dev` found in {data_dir} (no redis.url or redis.sock)")
    return Settings().redis_url


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--redis-url and --data-dir, shared by every rules command."""
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Data dir of a running `openfnf dev` (finds its Redis).",
    )(fn)
    fn = click.option("--redis-url", help="Redis holding the rules (default: OPENFNF_REDIS_URL).")(fn)
    return fn


def _client(url: str | None, data_dir: Path | None) -> redis.Redis:
    settings = Settings()
    if url or data_dir is not None:  # an explicit server: a single Redis unless the settings say cluster and no dev dir
        settings = settings.model_copy(update={"redis_url": redis_url(url, data_dir), "redis_cluster": settings.redis_cluster and data_dir is None})
    client: redis.Redis = state_client(settings, socket_timeout=10)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(f"cannot reach Redis at {redis_url(url, data_dir)}: {exc}") from None
    return client


def read_rules(client: redis.Redis) -> RuleSet:
    """Every stored rule and chaos rule."""
    return RuleSet.of(decode_rules(client.hgetall(keys.THROTTLE_RULES)), decode_chaos(client.hgetall(keys.CHAOS_RULES)))


def _fmt(value: float) -> str:
    return f"{value:g}"


def render(rules: RuleSet) -> str:
    """The human form of `show`: a rules table and the chaos table."""
    lines: list[str] = []
    if rules.rules:
        lines.append(f"{'scope':<11} {'action':<22} {'target':<24} {'rate/s':>8} {'burst':>6}")
        for r in rules.rules:
            lines.append(f"{r.scope.value:<11} {r.action:<22} {r.target:<24} {_fmt(r.rate):>8} {r.burst:>6}")
    else:
        lines.append("throttle: no rules (nothing is throttled)")
    if rules.chaos:
        lines.append("")
        lines.append(f"{'chaos action':<22} {'error':<22} {'share':>6}")
        for c in rules.chaos:
            lines.append(f"{c.action:<22} {c.error:<22} {_fmt(c.rate):>6}")
    else:
        lines.append("chaos: off")
    return "\n".join(lines)


def as_json(rules: RuleSet) -> str:
    """The machine form of `show`: the same shape as a rules file."""
    return json.dumps(
        {"rules": [r.model_dump(mode="json") for r in rules.rules], "chaos": [c.model_dump(mode="json") for c in rules.chaos]},
        indent=2,
    )


def _show(client: redis.Redis, as_json_: bool) -> None:
    rules = read_rules(client)
    click.echo(as_json(rules) if as_json_ else render(rules))


# --------------------------------------------------------------------------- throttle


@click.group()
def throttle() -> None:
    """Throttling rules (GCRA, shared by every front door; changes apply within a second)."""


@throttle.command("set")
@click.option("--action", required=True, help="API action, or '*' for every action without a rule of its own.")
@click.option("--rate", required=True, type=click.FloatRange(min=0, min_open=True), help="Requests per second, sustained.")
@click.option("--burst", required=True, type=click.IntRange(min=1), help="Requests accepted at once from a full bucket.")
@click.option("--scope", type=click.Choice([s.value for s in Scope]), default=Scope.ACCOUNT.value, show_default=True)
@click.option("--target", default=ANY, show_default=True, help="Account id, access key id or flow name; '*' = each its own bucket.")
@connection_options
def throttle_set(action: str, rate: float, burst: int, scope: str, target: str, redis_url: str | None, data_dir: Path | None) -> None:
    """Add or replace the rule for (scope, action, target)."""
    rule = Rule(action=action, rate=rate, burst=burst, scope=Scope(scope), target=target)
    client = _client(redis_url, data_dir)
    client.hset(keys.THROTTLE_RULES, rule.id, encode(rule))
    click.echo(f"set {rule.id}: {_fmt(rule.rate)}/s, burst {rule.burst}")


@throttle.command("show")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON (the rules-file shape).")
@connection_options
def throttle_show(as_json_: bool, redis_url: str | None, data_dir: Path | None) -> None:
    """Print every rule, and chaos if it is on."""
    _show(_client(redis_url, data_dir), as_json_)


@throttle.command("clear")
@click.option("--action", help="Only the rules of this action.")
@click.option("--scope", type=click.Choice([s.value for s in Scope]), help="Only the rules of this scope.")
@click.option("--target", help="Only the rules of this target.")
@connection_options
def throttle_clear(action: str | None, scope: str | None, target: str | None, redis_url: str | None, data_dir: Path | None) -> None:
    """Remove rules: all of them, or those matching the options."""
    client = _client(redis_url, data_dir)
    gone = [
        r.id
        for r in read_rules(client).rules
        if (action is None or r.action == action) and (scope is None or r.scope.value == scope) and (target is None or r.target == target)
    ]
    if gone:
        client.hdel(keys.THROTTLE_RULES, *gone)
    click.echo(f"cleared {len(gone)} rule{'s' if len(gone) != 1 else ''}")


# --------------------------------------------------------------------------- chaos


@click.group()
def chaos() -> None:
    """Fault injection: answer a share of an action's requests with a documented error (off by default)."""


@chaos.command("set")
@click.option("--action", required=True, help="API action, or '*' for every action without a chaos rule of its own.")
@click.option("--error", type=click.Choice(CHAOS_ERRORS), default="InternalServerError", show_default=True)
@click.option("--rate", required=True, type=click.FloatRange(min=0, max=1, min_open=True), help="Share of requests that fail, 0..1.")
@connection_options
def chaos_set(action: str, error: str, rate: float, redis_url: str | None, data_dir: Path | None) -> None:
    """Make `rate` of the action's requests fail with `error`."""
    rule = ChaosRule(action=action, error=error, rate=rate)
    _client(redis_url, data_dir).hset(keys.CHAOS_RULES, rule.action, encode(rule))
    click.echo(f"chaos on: {_fmt(rate)} of {action} requests answer {error}")


@chaos.command("show")
@click.option("--json", "as_json_", is_flag=True, help="Print JSON (the rules-file shape).")
@connection_options
def chaos_show(as_json_: bool, redis_url: str | None, data_dir: Path | None) -> None:
    """Print every rule, and chaos if it is on (the same as `throttle show`)."""
    _show(_client(redis_url, data_dir), as_json_)


@chaos.command("clear")
@click.option("--action", help="Only this action's chaos rule.")
@connection_options
def chaos_clear(action: str | None, redis_url: str | None, data_dir: Path | None) -> None:
    """Turn chaos off (for one action, or all)."""
    client = _client(redis_url, data_dir)
    if action is None:
        gone = int(client.delete(keys.CHAOS_RULES))
        click.echo("chaos off" if gone else "chaos was off")
    else:
        gone = int(client.hdel(keys.CHAOS_RULES, action))
        click.echo(f"chaos off for {action}" if gone else f"no chaos rule for {action}")


def env_for_dev(throttle_file: Path | None, throttle_profile: str | None) -> dict[str, str]:
    """The environment `openfnf dev` hands its front door for --throttle / --throttle-profile."""
    env: dict[str, str] = {}
    if throttle_file is not None:
        env["OPENFNF_THROTTLE_FILE"] = os.fspath(throttle_file.resolve())
    if throttle_profile is not None:
        env["OPENFNF_THROTTLE_PROFILE"] = throttle_profile
    return env


def check_seed(throttle_file: Path | None) -> None:
    """Refuse to start with a rules file that does not parse (rather than fail inside the front door)."""
    if throttle_file is None:
        return
    from common.throttle_rules import RulesError, parse_rules_document

    try:
        parse_rules_document(throttle_file.read_text(encoding="utf-8"), str(throttle_file))
    except RulesError as exc:
        raise click.BadParameter(str(exc), param_hint="--throttle") from None


def seed_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--throttle FILE and --throttle-profile, for `openfnf api` and `openfnf dev`."""
    fn = click.option(
        "--throttle-profile",
        type=click.Choice(["none", "cloud"]),
        help="Seed rules at start: `cloud` = the cloud's documented quotas per account.",
    )(fn)
    fn = click.option(
        "--throttle",
        "throttle_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Rules file (YAML/JSON: rules, chaos) seeded into Redis at start.",
    )(fn)
    return fn
