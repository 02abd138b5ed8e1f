"""The parsed form of a flow definition: one model for both FDL syntaxes (frozen, pure data).

Expressions, conditions and mappings are compiled at parse time; the compiled callables sit
beside their source text (excluded from comparisons) so the interpreter never parses at run time.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Syntax = Literal["old", "new"]

# Task integration modes, normalised to the new-syntax names (old `pattern` values map onto them).
REQUEST_COMPLETE = "RequestComplete"  # old requestResponse: the call's response is the result
WAIT_FOR_SYSTEM_CALLBACK = "WaitForSystemCallback"  # old sync: submitted, then the service reports the end
WAIT_FOR_CUSTOM_CALLBACK = "WaitForCustomCallback"  # old waitForCallback: submitted, then ReportTask* with the token
CALLBACK_MODES = frozenset({WAIT_FOR_SYSTEM_CALLBACK, WAIT_FOR_CUSTOM_CALLBACK})

ALL_ERRORS = "FnF.ALL"


@dataclass(frozen=True)
class Mapping:
    """Old syntax `{target, source}`: a key of the produced object and where its value comes from."""

    target: str
    source: Any  # a `$input`/`$local`/`$context` path string, or a constant


@dataclass(frozen=True)
class RetryPolicy:
    """One retry rule (old `retry[]`, new `Retry[]`); delays grow by `backoff_rate` up to a cap."""

    errors: tuple[str, ...]
    interval_seconds: float
    max_attempts: int  # retries after the first attempt
    backoff_rate: float
    max_interval_seconds: float | None

    def matches(self, error: str) -> bool:
        """Whether this rule applies to an error name."""
        return ALL_ERRORS in self.errors or error in self.errors

    def delay_ms(self, retry: int) -> int:
        """Milliseconds to wait before retry number `retry` (1-based)."""
        seconds = self.interval_seconds * self.backoff_rate ** (retry - 1)
        if self.max_interval_seconds is not None:
            seconds = min(seconds, self.max_interval_seconds)
        return int(round(min(seconds, 86400.0) * 1000))


@dataclass(frozen=True)
class CatchRule:
    """One catch rule: errors it matches, the state to go to, and (new syntax) the output to pass on."""

    errors: tuple[str, ...]
    goto: str
    output_constructor: dict[str, Any] | None = None
    output: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def matches(self, error: str) -> bool:
        """Whether this rule applies to an error name."""
        return ALL_ERRORS in self.errors or error in self.errors


@dataclass(frozen=True)
class ChoiceRule:
    """One choice: a condition (None for the default), where to go, and (old syntax) steps to run first."""

    condition: str | None
    goto: str | None  # None: continue after the choice step (old syntax)
    scope: str | None = None  # key of the branch's `steps` scope (old syntax), if it has any
    test: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TaskSpec:
    """What a task calls and how it waits."""

    kind: str  # fc, http, flow, mns, other; from resourceArn (old) or Action (new)
    resource: str  # old resourceArn; new Action
    action: str | None  # new syntax only
    mode: str  # REQUEST_COMPLETE, WAIT_FOR_SYSTEM_CALLBACK, WAIT_FOR_CUSTOM_CALLBACK
    params: Any = None  # old serviceParams / new Parameters template (None: not given)
    timeout_seconds: float | None = None
    error_mappings: tuple[Mapping, ...] | None = None  # old syntax only
    build_params: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class WaitSpec:
    """When a wait ends: a relative duration or an absolute time, each constant or computed."""

    seconds: float | None = None
    seconds_expr: str | None = None  # old `$.x` path / new `Seconds.$` expression
    until_ms: int | None = None
    until_expr: str | None = None
    seconds_fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    until_fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FanSpec:
    """Parallel branches, or the body a foreach/Map runs per item."""

    scopes: tuple[str, ...]  # keys of the branch scopes, or of the one iteration body
    items_expr: str | None = None  # foreach `collection` / Map `ItemsPath`; None for parallel
    item_key: str | None = None  # old foreach `item`
    index_key: str | None = None  # old foreach `index`
    max_concurrency: int = 0  # 0: no limit beyond the documented 100
    items_fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StateDef:
    """One state (new syntax) or step (old syntax), with its successor resolved in its scope."""

    name: str
    type: str  # lower case: task, pass, choice, parallel, foreach (old) / map (new), wait, succeed, fail
    path: str  # where it stands in the document, for messages: `steps[1]`, `States[0]`
    next: str | None  # the state after this one in its scope; None ends the scope
    input_mappings: tuple[Mapping, ...] | None = None
    output_mappings: tuple[Mapping, ...] | None = None
    input_constructor: dict[str, Any] | None = None
    output_constructor: dict[str, Any] | None = None
    error: str | None = None  # fail: old `error` / new `Code`
    cause: str | None = None  # fail: old `cause` / new `Detail`
    task: TaskSpec | None = None
    wait: WaitSpec | None = None
    fan: FanSpec | None = None
    dmap: Any = None  # a distributed Map: common.fdl.distributed.DistributedSpec (type "dmap")
    choices: tuple[ChoiceRule, ...] = ()
    default: ChoiceRule | None = None
    retry: tuple[RetryPolicy, ...] = ()
    catch: tuple[CatchRule, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    uses_context: bool = True  # whether any expression of the state reads $Context (else it is not built)
    # compiled forms of the mappings / constructors above
    map_input: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    map_output: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    build_input: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    build_output: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScopeDef:
    """A list of states run from `start`: the flow itself, or a branch / iteration / choice-branch body."""

    start: str | None  # None: an empty scope (old syntax allows `steps: []`)
    states: dict[str, StateDef]
    key: str = ""  # where the scope's list stands in the document; FlowDef.scopes is keyed by it


@dataclass(frozen=True)
class FlowDef:
    """A whole flow definition."""

    syntax: Syntax
    name: str | None
    root: ScopeDef
    input_mappings: tuple[Mapping, ...] | None = None  # old syntax, flow level
    output_mappings: tuple[Mapping, ...] | None = None
    timeout_seconds: int | None = None  # old `timeoutSeconds` / new `Timeout`: the execution ends TimedOut
    scopes: dict[str, ScopeDef] = field(default_factory=dict, compare=False, repr=False)
    map_input: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    map_output: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def scope(self, key: str) -> ScopeDef:
        """The scope with this key (the root is `steps` / `States`)."""
        return self.scopes[key]
