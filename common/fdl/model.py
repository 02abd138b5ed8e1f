"""The parsed form of a flow definition: one model for both FDL syntaxes (frozen, pure data)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Syntax = Literal["old", "new"]


@dataclass(frozen=True)
class Mapping:
    """Old syntax `{target, source}`: a key of the produced object and where its value comes from."""

    target: str
    source: Any  # a `$input`/`$local`/`$context` path string, or a constant


@dataclass(frozen=True)
class StateDef:
    """One state (new syntax) or step (old syntax), with its successor resolved in its scope."""

    name: str
    type: str  # lower case: pass, succeed, fail (more with the FDL issue)
    path: str  # where it stands in the document, for messages: `steps[1]`, `States[0]`
    next: str | None  # the state after this one in its scope; None ends the scope
    input_mappings: tuple[Mapping, ...] | None = None
    output_mappings: tuple[Mapping, ...] | None = None
    input_constructor: dict[str, Any] | None = None
    output_constructor: dict[str, Any] | None = None
    error: str | None = None  # fail: old `error` / new `Code`
    cause: str | None = None  # fail: old `cause` / new `Detail`
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ScopeDef:
    """A list of states run from `start`: the flow itself, or a branch / iteration body."""

    start: str | None  # None: an empty scope (old syntax allows `steps: []`)
    states: dict[str, StateDef]


@dataclass(frozen=True)
class FlowDef:
    """A whole flow definition."""

    syntax: Syntax
    name: str | None
    root: ScopeDef
    input_mappings: tuple[Mapping, ...] | None = None  # old syntax, flow level
    output_mappings: tuple[Mapping, ...] | None = None
    timeout_seconds: int | None = None
