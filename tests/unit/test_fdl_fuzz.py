"""No text makes the parser raise anything but FdlError, and whatever parses runs without raising.

CreateFlow answers 400 InvalidArgument for an FdlError and 500 for anything else, so this is the
"never a 500 on any YAML" rule. Inputs: arbitrary text, YAML-looking token soup, random documents
built from FDL field names, and the fixture flows with random parts replaced, removed or added.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.fdl import FdlError, FlowDef, parse_definition
from common.interpreter import Limits, advance
from tests.flowcases import load_cases

# OPENFNF_FUZZ_EXAMPLES raises the count for a deeper run (the suite default keeps it quick).
SETTINGS = settings(
    max_examples=int(os.environ.get("OPENFNF_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FIELDS = [
    "type", "name", "version", "steps", "end", "goto", "choices", "condition", "default", "branches", "iterationMapping",
    "collection", "item", "index", "duration", "timestamp", "resourceArn", "pattern", "retry", "catch", "errors",
    "inputMappings", "outputMappings", "errorMappings", "target", "source", "serviceParams", "timeoutSeconds",
    "Type", "Name", "StartAt", "States", "Next", "End", "Branches", "Condition", "Default", "Processor", "ItemsPath",
    "MaxConcuccency", "Seconds", "Seconds.$", "UntilDateTime", "Action", "TaskMode", "Parameters", "Retry", "Catch",
    "Errors", "MaxAttempts", "IntervalSeconds", "BackoffRate", "InputConstructor", "OutputConstructor", "x.$", "Code",
]  # fmt: skip
WORDS = [
    "flow", "v1", "v1beta1", "StateMachine", "pass", "task", "choice", "parallel", "foreach", "wait", "succeed", "fail",
    "Pass", "Task", "Choice", "Parallel", "Map", "Wait", "Succeed", "Fail", "A", "B", "$", "$.a", "$input.a", "$local[*].x",
    "$Input.a", "$Context.Current.Input", "$Output.Body", "format('{}', $Input.a)", "uuid()", "length($Input)", "1 +",
    "acs:fc:::services/s/functions/f", "FC:InvokeFunction", "HTTP:Request", "WaitForCustomCallback", "FnF.ALL",
    "2019-05-02T15:04:05Z", "", "开始", "\u0000", "{}", "[", "&a", "*a",
]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(WORDS), st.text(max_size=12),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)),
    max_leaves=40,
)
tokens = st.lists(
    st.sampled_from([
        "type: flow\n", "version: v1\n", "steps:\n", "  - ", "type: ", "name: ", "pass", "a", "\n", "    ", ": ", "- ",
        "{", "}", "[", "]", ", ", "&x ", "*x", "!!binary ", "!!set ", "!!omap ", "? ", "'", '"', "#", "|\n", ">\n",
        "\t", "Type: StateMachine\n", "StartAt: A\n", "States:\n", "Name: A\n", "End: true\n", "2020-01-01", "~", ".nan",
        "%YAML 1.1\n", "---\n", "...\n", "!!python/name:os.system", "<<: *x\n", "\\u", "\x85", "\ufeff",
    ]),
    max_size=40,
)  # fmt: skip


def _check(text: str) -> None:
    try:
        flow = parse_definition(text)
    except FdlError:
        return
    _runs(flow)


def _runs(flow: FlowDef, exec_input: Any = None) -> None:
    """A definition that parses must run (or fail as data) without raising; state stays JSON."""
    decision = advance(
        flow,
        None,
        [{"t": "Started", "input": exec_input if exec_input is not None else {"a": 1}, "name": "e", "flow": "f"}],
        1_700_000_000_000,
        limits=Limits(max_history_events=300),
    )
    assert json.loads(json.dumps(decision.state)) == decision.state


@SETTINGS
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _check(text)


@SETTINGS
@given(tokens)
def test_yaml_token_soup(parts: list[str]) -> None:
    _check("".join(parts))


@SETTINGS
@given(documents)
def test_random_documents_with_fdl_fields(doc: Any) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True))


@SETTINGS
@given(documents.map(lambda d: {"Type": "StateMachine", "StartAt": "A", "States": [{"Name": "A", **d}] if isinstance(d, dict) else d}))
def test_random_new_states(doc: Any) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True))


@SETTINGS
@given(documents.map(lambda d: {"type": "flow", "version": "v1", "steps": [{"name": "a", **d}] if isinstance(d, dict) else d}))
def test_random_old_steps(doc: Any) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True))


FIXTURE_DOCS = [yaml.safe_load(c.definition) for c in load_cases()]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


@SETTINGS
@given(st.data())
def test_mutated_fixture_flows(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(FIXTURE_DOCS)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(documents)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(FIELDS))] = data.draw(documents)
        else:
            parent.append(data.draw(documents))
    _check(yaml.safe_dump(doc, allow_unicode=True))



expressions = st.recursive(
    st.sampled_from(["1", "'a'", "$Input.a", "$Context.Current", "true", "null", "$.x", "uuid()", "[", ")", "!"]),
    lambda inner: st.one_of(
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"length({e})"),
        st.tuples(inner, st.sampled_from(["+", "&&", "==", "<", "*", "/", "%", "||"]), inner).map(" ".join),
    ),
    max_leaves=15,
)
WRAPPERS = {"(": ")", "!": "", "-": "", "[": "]", "length(": ")", "{\"k\": ": "}"}


@SETTINGS
@given(expressions, st.lists(st.sampled_from(sorted(WRAPPERS)), max_size=300))
def test_expressions_nested_and_broken(expression: str, wrappers: list[str]) -> None:
    """However deep an expression nests (or however it breaks), parsing ends in a FlowDef or an FdlError."""
    deep = "".join(wrappers) + expression + "".join(WRAPPERS[w] for w in reversed(wrappers))
    _check(yaml.safe_dump({"Type": "StateMachine", "StartAt": "A", "States": [{"Type": "Pass", "Name": "A", "End": True, "OutputConstructor": {"x.$": deep}}]}))
    _check(yaml.safe_dump({"type": "flow", "version": "v1", "steps": [{"type": "choice", "name": "a", "choices": [{"condition": deep, "goto": "a"}]}]}))
