"""A Map in distributed mode: every field parsed, every mistake named at CreateFlow (issue 16)."""
from __future__ import annotations

import pytest

from common.express import ExpressLimitError
from common.fdl import FdlError, parse_definition
from common.fdl.distributed import DistributedSpec, Param
from common.mapruns import check_express_children

HEAD = "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n"
PROC = "Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}"


def dmap(fields: str, mode: str = "ProcessorConfig: {ExecutionMode: Express}") -> str:
    return HEAD + f"  - {{Type: Map, Name: A, End: true, {mode}, {PROC}, {fields}}}\n"


def spec_of(text: str) -> DistributedSpec:
    state = parse_definition(text).root.states["A"]
    assert state.type == "dmap"
    return state.dmap  # type: ignore[no-any-return]


def test_every_field_is_read() -> None:
    spec = spec_of(dmap(
        "ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: b, ObjectName.$: $Input.key}, ReaderConfig: {CSVHeaders: [a, b], MaxItems: 9}},"
        " ItemConstructor: {v.$: $Item, w: 1}, ItemBatcher: {MaxItemsPerBatch: 3, MaxInputBytesPerBatch: 1000, BatchInput: {r.$: $Input.r}},"
        " ResultWriter: {Parameters: {Bucket: out, Prefix: p/}}, MaxItems: 5, MaxConcuccency: 7,"
        " ToleratedFailureCount: 2, ToleratedFailurePercentage: 12.5"
    ))  # fmt: skip
    assert spec.mode == "Express"
    assert spec.reader is not None and spec.reader.source_type == "OSS_CSV"
    assert spec.reader.params == {"Bucket": Param(value="b"), "ObjectName": Param(expr="$Input.key")}
    assert spec.reader.csv_headers == ("a", "b") and spec.reader.max_items == Param(value=9)
    assert spec.item_constructor == {"v.$": "$Item", "w": 1}
    assert spec.batcher is not None and (spec.batcher.max_items, spec.batcher.max_bytes) == (3, 1000)
    assert spec.writer is not None and spec.writer.params == {"Bucket": Param(value="out"), "Prefix": Param(value="p/")}
    assert spec.max_items == Param(value=5) and spec.max_concurrency == 7
    assert (spec.tolerated_count, spec.tolerated_percentage) == (2, 12.5)
    assert '"StartAt":"P"' in spec.child_definition("f")


@pytest.mark.parametrize(
    ("mode", "distributed"),
    [
        ("ProcessorConfig: {ExecutionMode: Standard}", "Standard"),
        ("ProcessorConfig: {Mode: Distributed}", "Standard"),
        ("ProcessorConfig: {Mode: Distributed, ExecutionMode: Express}", "Express"),
        ("ProcessorConfig: {Mode: Inline, ExecutionMode: Express}", None),
        ("Description: inline", None),
    ],
)
def test_mode_switch(mode: str, distributed: str | None) -> None:
    state = parse_definition(dmap("ItemsPath: $Input.x", mode)).root.states["A"]
    if distributed is None:
        assert state.type == "map" and state.dmap is None
    else:
        assert state.type == "dmap" and state.dmap.mode == distributed


def test_max_concurrency_alias_and_defaults() -> None:
    spec = spec_of(dmap("ItemsPath: $Input.x, MaxConcurrency: 3"))
    assert spec.max_concurrency == 3 and spec.tolerated_count is None and spec.tolerated_percentage is None


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ("Description: x", "needs ItemsPath"),
        ("ItemsPath: $Input.x, MaxConcuccency: 2, MaxConcurrency: 3", "not both"),
        ("ItemsPath: $Input.x, ToleratedFailurePercentage: 101", "ToleratedFailurePercentage must be between 0 and 100"),
        ("ItemsPath: $Input.x, ToleratedFailureCount: -1", "ToleratedFailureCount must be"),
        ("ItemsPath: $Input.x, MaxItems: 0", "MaxItems must be"),
        ("ItemReader: {SourceType: S3, SourceParameters: {Bucket: b}}", "ItemReader.SourceType must be one of"),
        ("ItemReader: {SourceType: OSS_CSV, SourceParameters: {ObjectName: k}}", "SourceParameters.Bucket is required"),
        ("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: b}}", "ObjectName is required for OSS_CSV"),
        ("ItemReader: {SourceType: OSS_OBJECTS, SourceParameters: {Bucket: b, ObjectName: k}}", "not used by OSS_OBJECTS"),
        ("ItemReader: {SourceType: OSS_JSON_LIST, SourceParameters: {Bucket: b, ObjectName: k}, ReaderConfig: {CSVHeaders: [a]}}", "CSVHeaders is only for OSS_CSV"),
        ("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: b, ObjectName: k}, ReaderConfig: {CSVHeaders: [a, a]}}", "repeated column"),
        ("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: b, ObjectName: k, Colour: red}}", "unknown field 'Colour'"),
        ("ItemsPath: $Input.x, ItemBatcher: {BatchInput: {a: 1}}", "ItemBatcher needs MaxItemsPerBatch or MaxInputBytesPerBatch"),
        ("ItemsPath: $Input.x, ItemBatcher: {MaxInputBytesPerBatch: 70000}", "MaxInputBytesPerBatch must be between 1 and 65536"),
        ("ItemsPath: $Input.x, ItemConstructor: {v.$: '$Nope.x'}", "ItemConstructor.v.$"),
        ("ItemsPath: $Input.x, ResultWriter: {Parameters: {Prefix: p}}", "ResultWriter.Parameters.Bucket is required"),
        ("ItemsPath: $Input.x, ResultWriter: {Bucket: b}", "ResultWriter: unknown field 'Bucket'"),
    ],
)
def test_mistakes_name_the_field(fields: str, fragment: str) -> None:
    with pytest.raises(FdlError) as info:
        parse_definition(dmap(fields))
    assert fragment in str(info.value)
    assert "States[0] (A)" in str(info.value)


def test_bad_execution_mode_is_named() -> None:
    with pytest.raises(FdlError, match="ExecutionMode must be Standard or Express"):
        parse_definition(dmap("ItemsPath: $Input.x", "ProcessorConfig: {ExecutionMode: Fast}"))


def test_processor_is_checked_like_any_scope() -> None:
    text = HEAD + "  - {Type: Map, Name: A, End: true, ItemsPath: $Input.x, ProcessorConfig: {ExecutionMode: Express}, Processor: {StartAt: Q, States: [{Type: Pass, Name: P, End: true}]}}\n"
    with pytest.raises(FdlError, match="StartAt: 'Q' names no state"):
        parse_definition(text)


def test_express_children_may_not_wait_for_callbacks() -> None:
    task = ("{Type: Task, Name: T, Action: 'FC:InvokeFunction', TaskMode: WaitForCustomCallback,"
            " Parameters: {resourceArn: 'acs:fc:cn-hangzhou:1:services/s/functions/f'}, End: true}")  # fmt: skip
    text = HEAD + f"  - {{Type: Map, Name: A, End: true, ItemsPath: $Input.x, ProcessorConfig: {{ExecutionMode: Express}}, Processor: {{StartAt: T, States: [{task}]}}}}\n"
    with pytest.raises(ExpressLimitError, match=r"States\[0\] \(A\)\.Processor runs as Express children"):
        check_express_children(parse_definition(text), 300)
    check_express_children(parse_definition(text.replace("ExecutionMode: Express", "ExecutionMode: Standard")), 300)
