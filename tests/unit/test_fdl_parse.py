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
    # Choice
    ("choice without Default", NEW_HEAD + "  - {Type: Choice, Name: A, Branches: [{Condition: '$Input.a == 1', Next: B}]}\n  - {Type: Pass, Name: B, End: true}\n", "States[0] (A): a Choice needs Default"),
    ("choice bad condition", NEW_HEAD + "  - {Type: Choice, Name: A, Branches: [{Condition: '$Input.a ==', Next: B}], Default: B}\n  - {Type: Pass, Name: B, End: true}\n", "States[0] (A).Branches[0].Condition:"),
    ("choice Next unknown", NEW_HEAD + "  - {Type: Choice, Name: A, Branches: [{Condition: 'true', Next: Z}], Default: A}\n", "States[0] (A).Branches[0]: Next 'Z' names no state"),
    ("choice Default unknown", NEW_HEAD + "  - {Type: Choice, Name: A, Branches: [{Condition: 'true', Next: A}], Default: Z}\n", "States[0] (A): Default 'Z' names no state"),
    ("choice with Next", NEW_HEAD + "  - {Type: Choice, Name: A, Branches: [{Condition: 'true', Next: A}], Default: A, Next: A}\n", "States[0] (A): unknown field 'Next'"),
    # Wait
    ("wait both", NEW_HEAD + "  - {Type: Wait, Name: A, Seconds: 1, UntilDateTime: '2020-01-01T00:00:00Z', End: true}\n", "not both Seconds and UntilDateTime"),
    ("wait both expr", NEW_HEAD + "  - {Type: Wait, Name: A, Seconds.$: $Input.s, UntilDateTime: '2020-01-01T00:00:00Z', End: true}\n", "not both Seconds.$ and UntilDateTime"),
    ("wait neither", NEW_HEAD + "  - {Type: Wait, Name: A, End: true}\n", "exactly one of Seconds (or Seconds.$) and UntilDateTime, not neither"),
    ("wait bad time", NEW_HEAD + "  - {Type: Wait, Name: A, UntilDateTime: tomorrow, End: true}\n", "UntilDateTime 'tomorrow' is not an RFC 3339 time"),
    ("wait negative", NEW_HEAD + "  - {Type: Wait, Name: A, Seconds: -1, End: true}\n", "Seconds must be between 0 and"),
    ("wait bad Seconds.$", NEW_HEAD + "  - {Type: Wait, Name: A, Seconds.$: '$Nope', End: true}\n", "States[0] (A).Seconds.$: unknown root '$Nope'"),
    # Task
    ("task no Action", NEW_HEAD + "  - {Type: Task, Name: A, End: true}\n", "States[0] (A): Action must name the integration"),
    ("task bad TaskMode", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', TaskMode: Sync, End: true}\n", "TaskMode must be one of"),
    ("task FC without ARN", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'FC:InvokeFunction', End: true}\n", "Parameters.resourceArn must name the function"),
    ("task FC bad ARN", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'FC:InvokeFunction', Parameters: {resourceArn: 'arn:aws:lambda'}, End: true}\n", "is not a Function Compute ARN"),
    ("task child flow bad ARN", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'FNF:StartExecution', Parameters: {resourceArn: 'acs:fnf:::flows/x'}, End: true}\n", "is not a flow ARN"),
    ("task bad Parameters", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Parameters: {url.$: 'format(1'}, End: true}\n", "States[0] (A).Parameters.url.$:"),
    ("task bad Timeout", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Timeout: soon, End: true}\n", "Timeout must be a number"),
    ("retry without Errors", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Retry: [{MaxAttempts: 1, IntervalSeconds: 1}], End: true}\n", "States[0] (A).Retry[0]: Errors must be a non-empty list"),
    ("retry without MaxAttempts", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Retry: [{Errors: [E], IntervalSeconds: 1}], End: true}\n", "Retry[0]: MaxAttempts is required"),
    ("retry AWS field", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Retry: [{ErrorEquals: [E], MaxAttempts: 1, IntervalSeconds: 1}], End: true}\n", "Retry[0]: unknown field 'ErrorEquals'"),
    ("retry interval too long", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Retry: [{Errors: [E], MaxAttempts: 1, IntervalSeconds: 86401}], End: true}\n", "IntervalSeconds must be between 0 and 86400"),
    ("catch Next unknown", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Catch: [{Errors: [E], Next: Nope}], End: true}\n", "States[0] (A).Catch[0]: Next 'Nope' names no state"),
    ("catch without Next", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Catch: [{Errors: [E]}], End: true}\n", "Catch[0]: Next must name"),
    ("catch bad OutputConstructor", NEW_HEAD + "  - {Type: Task, Name: A, Action: 'HTTP:Request', Catch: [{Errors: [E], Next: A, OutputConstructor: {e.$: '$Context.'}}], End: true}\n", "Catch[0].OutputConstructor.e.$:"),
    # Map and Parallel
    ("map without ItemsPath", NEW_HEAD + "  - {Type: Map, Name: A, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "States[0] (A): ItemsPath must be an expression"),
    ("map bad ItemsPath", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: 'items', Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "States[0] (A).ItemsPath:"),
    ("map without Processor", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, End: true}\n", "States[0] (A).Processor must be a mapping"),
    ("map concurrency too high", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, MaxConcuccency: 1000, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "MaxConcuccency must be between 0 and 100"),
    ("map both spellings", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, MaxConcuccency: 1, MaxConcurrency: 2, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "not both"),
    ("map bad mode", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, ProcessorConfig: {Mode: Sideways}, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "ProcessorConfig.Mode must be Inline or Distributed"),
    ("inline map with reader", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, ItemBatcher: {MaxItemsPerBatch: 2}, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "ItemBatcher needs distributed mode"),
    ("map nested Next unknown", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, Processor: {StartAt: P, States: [{Type: Pass, Name: P, Next: A}]}, End: true}\n", "States[0].Processor.States[0] (P): Next 'A' names no state in States[0].Processor.States"),
    ("map nested duplicate", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}, {Type: Pass, Name: P, End: true}]}, End: true}\n", "States[0].Processor.States[1] (P): duplicate state name 'P'"),
    ("map nested StartAt", NEW_HEAD + "  - {Type: Map, Name: A, ItemsPath: $Input.x, Processor: {StartAt: Z, States: [{Type: Pass, Name: P, End: true}]}, End: true}\n", "States[0].Processor.StartAt: 'Z' names no state"),
    ("parallel nested unreachable", NEW_HEAD + "  - {Type: Parallel, Name: A, Branches: [{StartAt: P, States: [{Type: Pass, Name: P, End: true}, {Type: Pass, Name: Q, End: true}]}], End: true}\n", "States[0].Branches[0].States[1] (Q): state is unreachable"),
    ("parallel no branches", NEW_HEAD + "  - {Type: Parallel, Name: A, Branches: [], End: true}\n", "Branches must be a non-empty list"),
    ("parallel too wide", NEW_HEAD + "  - {Type: Parallel, Name: A, End: true, Branches: [" + ", ".join(["{StartAt: P, States: [{Type: Pass, Name: P, End: true}]}"] * 51) + "]}\n", "at most 50 branches, not 51"),
    # expressions
    ("eleven nested calls", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x.$: 'length(length(length(length(length(length(length(length(length(length(length(1)))))))))))'}}\n", "nests more than 10 function calls"),
    ("unknown function", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x.$: 'nope(1)'}}\n", "unknown function 'nope()'"),
    ("parentheses 300 deep", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x.$: '" + "(" * 300 + "1" + ")" * 300 + "'}}\n", "nested more than 64 levels deep"),
    ("negations 300 deep", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: '" + "!" * 300 + "$.a', goto: a}]}\n", "nested more than 64 levels deep"),
    # definitions nest at most 200 levels (common/fdl/document.py), at any depth past it with the same words
    ("result 201 deep", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, Result: " + "[" * 201 + "]" * 201 + "}\n", "nested more than 200 levels deep"),
    ("result 5000 deep", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, Result: " + "[" * 5000 + "]" * 5000 + "}\n", "definition: nested more than 200 levels deep"),
    ("result NaN", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, Result: .nan}\n", "is not a JSON number"),
    ("wrong arity", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x.$: 'length(1, 2)'}}\n", "length() takes 1 argument(s), not 2"),
    ("bare word", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, InputConstructor: {x.$: hello}}\n", "'hello' in 'hello' is not a value"),
    ("nested constructor key", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, InputConstructor: {a: {b: [{c.$: '$Input.'}]}}}\n", "InputConstructor.a.b[0].c.$:"),
    # old syntax
    ("old choice bad condition", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: '$.a === 1', goto: a}]}\n", "steps[0] (a).choices[0].condition:"),
    ("old choice function", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: 'length($.a) > 1', goto: a}]}\n", "not part of old-syntax conditions"),
    ("old choice goto unknown", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: '$.a', goto: z}]}\n", "steps[0] (a).choices[0]: goto 'z' names no sibling step"),
    ("old choice default goto", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: '$.a'}], default: {goto: z}}\n", "steps[0] (a).default: goto 'z' names no sibling step"),
    ("old choice without choices", OLD_HEAD + "  - {type: choice, name: a}\n", "steps[0] (a): choices must be a non-empty list"),
    ("old goto out of its list", OLD_HEAD + "  - {type: choice, name: a, choices: [{condition: '$.a', steps: [{type: choice, name: inner, choices: [{condition: '$.b', goto: b}]}]}]}\n  - {type: pass, name: b}\n", "steps[0].choices[0].steps[0] (inner).choices[0]: goto 'b' names no sibling step"),
    ("old wait both", OLD_HEAD + "  - {type: wait, name: a, duration: 1, timestamp: '2020-01-01T00:00:00Z'}\n", "steps[0] (a): a wait step needs exactly one of duration or timestamp"),
    ("old wait neither", OLD_HEAD + "  - {type: wait, name: a}\n", "exactly one of duration or timestamp"),
    ("old wait over two days", OLD_HEAD + "  - {type: wait, name: a, duration: 172801}\n", "duration must be between 0 and 172800"),
    ("old wait bad timestamp", OLD_HEAD + "  - {type: wait, name: a, timestamp: soon}\n", "timestamp 'soon' is not an RFC 3339 time"),
    ("old task without resourceArn", OLD_HEAD + "  - {type: task, name: a}\n", "steps[0] (a): resourceArn must name what the task calls"),
    ("old task bad pattern", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', pattern: async}\n", "pattern must be requestResponse, sync or waitForCallback"),
    ("old task bad flow ARN", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fnf:::flows'}\n", "is not a flow ARN"),
    ("old catch goto unknown", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', catch: [{errors: [E], goto: z}]}\n", "steps[0] (a).catch[0]: goto 'z' names no sibling step"),
    ("old catch without goto", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', catch: [{errors: [E]}]}\n", "catch[0]: goto must name the step"),
    ("old retry bad multiplier", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', retry: [{errors: [E], multiplier: 0.5}]}\n", "retry[0]: multiplier must be between 1 and 100"),
    ("old retry without errors", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', retry: [{maxAttempts: 2}]}\n", "retry[0]: errors must be a non-empty list"),
    ("old bad errorMappings", OLD_HEAD + "  - {type: task, name: a, resourceArn: 'acs:fc:::services/s/functions/f', errorMappings: [{target: e}]}\n", "errorMappings[0] must have `target` and `source`"),
    ("old foreach without iterationMapping", OLD_HEAD + "  - {type: foreach, name: a, steps: []}\n", "steps[0] (a).iterationMapping must be a mapping"),
    ("old foreach without item", OLD_HEAD + "  - {type: foreach, name: a, iterationMapping: {collection: $.x}, steps: []}\n", "iterationMapping.item must name the key"),
    ("old foreach collection not a path", OLD_HEAD + "  - {type: foreach, name: a, iterationMapping: {collection: names, item: n}, steps: []}\n", "iterationMapping.collection must be a path"),
    ("old parallel duplicate in branch", OLD_HEAD + "  - {type: parallel, name: a, branches: [{steps: [{type: pass, name: x}, {type: pass, name: x}]}]}\n", "steps[0].branches[0].steps[1] (x): duplicate step name 'x'"),
    ("old parallel too wide", OLD_HEAD + "  - {type: parallel, name: a, branches: [" + ", ".join(["{steps: []}"] * 101) + "]}\n", "at most 100 branches, not 101"),
    ("old unknown field in a branch", OLD_HEAD + "  - {type: parallel, name: a, branches: [{steps: [{type: pass, name: x, bogus: 1}]}]}\n", "steps[0].branches[0].steps[0] (x): unknown field 'bogus'"),
    ("old unknown type in foreach", OLD_HEAD + "  - {type: foreach, name: a, iterationMapping: {collection: $.x, item: i}, steps: [{type: loop, name: l}]}\n", "steps[0].steps[0] (l): unknown step type 'loop'"),
    # YAML that is not a plain JSON document
    ("alias to itself", "&a [*a]", "a YAML alias refers to itself"),
    ("alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "definition is too large"),
    ("NaN constant", NEW_HEAD + "  - {Type: Pass, Name: A, End: true, OutputConstructor: {x: .nan}}\n", "States[0].OutputConstructor.x: nan is not a JSON number"),
    ("python tag", "!!python/object:os.system x", "could not determine a constructor"),
    ("empty text", "", "must be a YAML mapping"),
    ("SpecVersion", "Type: StateMachine\nSpecVersion: v2\nStartAt: A\nStates: [{Type: Pass, Name: A, End: true}]", "SpecVersion must be 'v1'"),
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


def test_yaml_extras_become_json() -> None:
    """Timestamps, binary and non-string keys are JSON in the parsed flow (its data must store as JSON)."""
    flow = parse_definition(
        NEW_HEAD + "  - {Type: Pass, Name: A, End: true, InputConstructor: {when: 2020-01-02T03:04:05Z, day: 2020-01-02, bin: !!binary aGk=, yes: 1, 2: two}}\n"
    )
    assert flow.root.states["A"].input_constructor == {"when": "2020-01-02T03:04:05Z", "day": "2020-01-02", "bin": "aGk=", "true": 1, "2": "two"}


def test_numbers_as_state_names_are_text() -> None:
    flow = parse_definition("Type: StateMachine\nStartAt: 1\nStates:\n  - {Type: Pass, Name: 1, Next: 2}\n  - {Type: Pass, Name: 2, End: true}\n")
    assert flow.root.start == "1" and flow.root.states["1"].next == "2"


def test_old_unquoted_timestamp_is_read() -> None:
    flow = parse_definition(OLD_HEAD + "  - {type: wait, name: w, timestamp: 2019-05-02T15:04:05Z}\n")
    wait = flow.root.states["w"].wait
    assert wait is not None and wait.until_ms == 1556809445000


def test_every_scope_is_indexed_by_its_document_path() -> None:
    flow = parse_definition(
        NEW_HEAD
        + "  - {Type: Parallel, Name: A, End: true, Branches: [{StartAt: B, States: [{Type: Map, Name: B, ItemsPath: $Input.x, End: true,"
        + " Processor: {StartAt: C, States: [{Type: Pass, Name: C, End: true}]}}]}]}\n"
    )
    assert sorted(flow.scopes) == ["States", "States[0].Branches[0].States", "States[0].Branches[0].States[0].Processor.States"]
