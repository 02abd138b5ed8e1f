"""Parser and validator: what is rejected, and that the message says where and what."""
from __future__ import annotations

import pytest

from common.fdl import FdlError, parse_definition

NEW_HEAD = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n"
OLD_HEAD = "version: v1\ntype: flow\nsteps:\n"

INVALID = [
    ("not yaml", "a: [unclosed", "not valid YAML at line 1"),
    ("a list", "- 1\n- 2", "must be a YAML mapping"),
    ("no type", "steps: []", "type: flow"),
    ("old wrong version", "version: v2\ntype: flow\nsteps: []", "version must be 'v1' or 'v1beta1'"),
    ("old wrong type", "version: v1\ntype: machine\nsteps: []", "type must be 'flow'"),
    ("old unknown flow field", "version: v1\ntype: flow\nsteps: []\nfoo: 1", "unknown field 'foo'"),
    ("old steps not a list", "version: v1\ntype: flow\nsteps: {a: 1}", "steps must be a list"),
    ("old nameless step", OLD_HEAD + "  - type: pass\n", "steps[0]: every step needs a non-empty string `name`"),
    ("old duplicate", OLD_HEAD + "  - {type: pass, name: a}\n  - {type: pass, name: a}\n", "steps[1] (a): duplicate step name 'a'"),
    ("old unknown type", OLD_HEAD + "  - {type: sleep, name: a}\n", "steps[0] (a): unknown step type 'sleep'"),
    ("old unknown step field", OLD_HEAD + "  - {type: pass, name: a, colour: red}\n", "steps[0] (a): unknown field 'colour'"),
    ("old bad end", OLD_HEAD + "  - {type: pass, name: a, end: yes please}\n", "end must be true or false"),
    ("old mapping without source", OLD_HEAD + "  - {type: pass, name: a, outputMappings: [{target: x}]}\n", "outputMappings[0] must have `target` and `source`"),
    ("old bad path", OLD_HEAD + "  - {type: pass, name: a, outputMappings: [{target: x, source: '$input.[oops'}]}\n", "outputMappings[0].source"),
    ("old timeout", "version: v1\ntype: flow\ntimeoutSeconds: -3\nsteps: []", "timeoutSeconds must be a positive integer"),
    ("new wrong Type", "Type: Flow\nStartAt: A\nStates: []", "Type must be 'StateMachine'"),
    ("new no States", "Type: StateMachine\nStartAt: A", "States must be a non-empty list"),
    ("new no StartAt", "Type: StateMachine\nStates:\n  - {Type: Pass, Name: A, End: true}", "StartAt must name the first state"),
    ("new StartAt unknown", "Type: StateMachine\nStartAt: Z\nStates:\n  - {Type: Pass, Name: A, End: true}", "StartAt: 'Z' names no state"),
    ("new Next unknown", NEW_HEAD + "  - {Type: Pass, Name: A, Next: Q}\n", "States[0] (A): Next 'Q' names no state"),
    ("new duplicate", NEW_HEAD + "  - {Type: Pass, Name: A, End: true}\n  - {Type: Pass, Name: A, End: true}\n", "States[1] (A): duplicate state name 'A'"),
    ("new unknown Type", NEW_HEAD + "  - {Type: Sleep, Name: A, End: true}\n", "States[0] (A): unknown state Type 'Sleep'"),
    ("new unknown field", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, Colour: red}\n", "States[0] (A): unknown field 'Colour'"),
    ("new neither Next nor End", NEW_HEAD + "  - {Type: Pass, Name: A}\n", "States[0] (A): needs Next or End: true"),
    ("new both Next and End", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, Next: A}\n", "Next and End cannot both be set"),
    ("new unreachable", NEW_HEAD + "  - {Type: Pass, Name: A, End: true}\n  - {Type: Pass, Name: B, End: true}\n", "States[1] (B): state is unreachable"),
    ("new bad expression", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, InputConstructor: {x.$: '$Nope.a'}}\n", "InputConstructor.x.$: unknown root '$Nope'"),
    ("new expression not a string", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x.$: 5}}\n", "OutputConstructor.x.$ must be an expression string"),
    ("new nameless", NEW_HEAD + "  - {Type: Pass, End: true}\n", "States[0]: every state needs a non-empty string `Name`"),
]


@pytest.mark.parametrize("text, fragment", [(t, f) for _, t, f in INVALID], ids=[n for n, _, _ in INVALID])
def test_invalid_definition_is_rejected_with_where_and_what(text: str, fragment: str) -> None:
    with pytest.raises(FdlError) as info:
        parse_definition(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "version: v1\ntype: flow\nname: my_flow_name\nsteps:\n  - type: pass\n    name: mypass",
        "Type: StateMachine\nSpecVersion: v1\nName: my_flow_name\nStartAt: my_state\nStates:\n  - Type: Pass\n    Name: my_state\n    End: true",
        "version: v1beta1\ntype: flow\nsteps:\n  - type: fail\n    name: f\n    error: E\n    cause: C",
        '{"Type": "StateMachine", "StartAt": "A", "States": [{"Type": "Succeed", "Name": "A"}]}',
    ],
    ids=["old api example", "new api example", "v1beta1 fail", "json document"],
)
def test_documented_examples_parse(text: str) -> None:
    flow = parse_definition(text)
    assert flow.root.start is not None


def test_old_step_successors_follow_list_order_and_end() -> None:
    flow = parse_definition(OLD_HEAD + "  - {type: pass, name: a}\n  - {type: pass, name: b, end: true}\n  - {type: pass, name: c}\n")
    assert [flow.root.states[n].next for n in "abc"] == ["b", None, None]
