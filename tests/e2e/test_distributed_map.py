"""Distributed Map through the official SDK: directory buckets and a real S3 API (moto's server), every
source type, batching, constructors, result files, tolerances, MapRun actions, stop (issue 16)."""
from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from tests.conftest import Service, running_service

pytestmark = pytest.mark.e2e

def _flow(state: str, name: str = "M") -> str:
    """A flow whose one state is the Map given as YAML lines (indented by 4)."""
    return f"Type: StateMachine\nStartAt: {name}\nStates:\n{state}"


def _map(extra: str, processor: str = "{StartAt: P, States: [{Type: Pass, Name: P, End: true}]}", mode: str = "Express") -> str:
    lines = [
        "  - Type: Map",
        "    Name: M",
        f"    ProcessorConfig: {{ExecutionMode: {mode}}}",
        f"    Processor: {processor}",
        "    End: true",
    ]
    return "\n".join(lines + ["    " + line for line in extra.strip().splitlines()]) + "\n"


_counter = {"n": 0}


def create(sdk: Any, definition: str) -> str:
    _counter["n"] += 1
    name = f"dmap{_counter['n']}_{os.getpid()}"
    sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description="", type="FDL"))
    return name


def start(sdk: Any, flow: str, data: dict[str, Any] | None = None) -> str:
    return str(sdk.start_execution(models.StartExecutionRequest(flow_name=flow, input=json.dumps(data or {}))).body.name)


def wait(sdk: Any, flow: str, name: str) -> Any:
    deadline = time.monotonic() + 120
    while True:
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=20)).body
        if body.status not in ("Running", "Starting") or time.monotonic() > deadline:
            return body


def history(sdk: Any, flow: str, name: str) -> list[Any]:
    return list(sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name, limit=1000)).body.events)


def map_run_name(sdk: Any, flow: str, name: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for event in history(sdk, flow, name):
            if event.type == "MapRunStarted":
                return str(json.loads(event.event_detail)["output"]["MapRunName"])
        time.sleep(0.05)
    raise AssertionError("no MapRunStarted")


def describe_run(sdk: Any, flow: str, name: str, run: str) -> Any:
    return sdk.describe_map_run(models.DescribeMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run)).body


def run_ok(sdk: Any, definition: str, data: dict[str, Any] | None = None) -> Any:
    flow = create(sdk, definition)
    name = start(sdk, flow, data)
    body = wait(sdk, flow, name)
    assert body.status == "Succeeded", (body.status, body.error_code if hasattr(body, "error_code") else "", body.output)
    return json.loads(body.output)


# ---------------------------------------------------------------- services


@pytest.fixture(scope="module")
def buckets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("buckets")
    (root / "data").mkdir()
    (root / "out").mkdir()
    return root


@pytest.fixture(scope="module")
def dir_service(tmp_path_factory: pytest.TempPathFactory, buckets: Path) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("dmapsvc")
    with running_service(tmp, workers=1, timers=1, OPENFNF_BUCKETS_DIR=str(buckets)) as svc:
        yield svc


@pytest.fixture(scope="module")
def sdk(dir_service: Service) -> Any:
    return dir_service.client()


def put(buckets: Path, key: str, data: bytes | str) -> None:
    path = buckets / "data" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


# ---------------------------------------------------------------- directory buckets


def test_items_path_express_children_output_in_item_order(sdk: Any) -> None:
    out = run_ok(sdk, _flow(_map("ItemsPath: $Input.xs\nItemConstructor: {v.$: $Item, k.$: $Input.k}")), {"xs": [3, 1, 2], "k": "K"})
    assert out == {"Items": [{"v": 3, "k": "K"}, {"v": 1, "k": "K"}, {"v": 2, "k": "K"}]}


def test_csv_with_header_row_standard_children_and_map_run_events(sdk: Any, buckets: Path) -> None:
    put(buckets, "rows.csv", 'id,name\n1,"a,b"\n2,"x\ny"\n3,c\n')
    definition = _flow(_map("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: data, ObjectName: rows.csv}}", mode="Standard"))
    flow = create(sdk, definition)
    name = start(sdk, flow)
    body = wait(sdk, flow, name)
    assert body.status == "Succeeded"
    assert json.loads(body.output) == {"Items": [{"id": "1", "name": "a,b"}, {"id": "2", "name": "x\ny"}, {"id": "3", "name": "c"}]}
    events = history(sdk, flow, name)
    types = [e.type for e in events]
    assert "MapRunStarted" in types and "MapRunSucceeded" in types
    run = map_run_name(sdk, flow, name)
    assert len(run) == 32 and all(c in "0123456789abcdef" for c in run)
    got = describe_run(sdk, flow, name, run)
    assert got.status == "Succeeded" and got.map_run_name == run and got.execution_name == name
    counts = got.item_counts
    assert (counts.total, counts.succeed, counts.failed, counts.pending, counts.running, counts.aborted) == (3, 3, 0, 0, 0, 0)
    children = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, map_run_name=run)).body.executions
    assert [c.name for c in children] == [f"m{run}-{i}" for i in range(3)]
    assert json.loads(children[1].input) == {"id": "2", "name": "x\ny"}
    top = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow)).body.executions
    assert [e.name for e in top] == [name]  # children are listed only by MapRunName
    child = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=f"m{run}-2")).body
    assert child.status == "Succeeded" and json.loads(child.output) == {"id": "3", "name": "c"}
    child_events = [e.type for e in history(sdk, flow, f"m{run}-2")]
    assert child_events[0] == "ExecutionStarted" and child_events[-1] == "ExecutionSucceeded"


def test_csv_given_headers_json_list_objects_and_inventory(sdk: Any, buckets: Path) -> None:
    put(buckets, "plain.csv", "1,a\n2,b\n")
    out = run_ok(sdk, _flow(_map("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: data, ObjectName: plain.csv}, ReaderConfig: {CSVHeaders: [n, s]}}")))
    assert out == {"Items": [{"n": "1", "s": "a"}, {"n": "2", "s": "b"}]}
    put(buckets, "list.json", json.dumps([1, {"a": [1, 2]}, "é", None]))
    out = run_ok(sdk, _flow(_map("ItemReader: {SourceType: OSS_JSON_LIST, SourceParameters: {Bucket: data, ObjectName: list.json}}\nItemConstructor: {x.$: $Item}")))
    assert out == {"Items": [{"x": 1}, {"x": {"a": [1, 2]}}, {"x": "é"}, {"x": None}]}
    for key in ("objs/b.txt", "objs/a.txt", "objs/sub/c.txt", "other.txt"):
        put(buckets, key, key)
    out = run_ok(sdk, _flow(_map("ItemReader: {SourceType: OSS_OBJECTS, SourceParameters: {Bucket: data, Prefix: objs/}}\nItemConstructor: {k.$: $Item.Key, s.$: $Item.Size}")))
    assert out == {"Items": [{"k": "objs/a.txt", "s": 10}, {"k": "objs/b.txt", "s": 10}, {"k": "objs/sub/c.txt", "s": 14}]}
    put(buckets, "inv/data/0.csv.gz", gzip.compress(b'"data","x%2Fy.txt","5"\n"data","z.txt","7"\n'))
    put(buckets, "inv/manifest.json", json.dumps({"fileSchema": "Bucket, Key, Size", "files": [{"key": "inv/data/0.csv.gz"}]}))
    out = run_ok(sdk, _flow(_map("ItemReader: {SourceType: OSS_INVENTORY_FILES, SourceParameters: {Bucket: data, ObjectName: inv/manifest.json}}")))
    assert out == {"Items": [{"Bucket": "data", "Key": "x/y.txt", "Size": 5}, {"Bucket": "data", "Key": "z.txt", "Size": 7}]}


def test_batches_by_count_and_bytes_with_batch_input_and_max_items(sdk: Any) -> None:
    xs = list(range(7))
    out = run_ok(sdk, _flow(_map("ItemsPath: $Input.xs\nItemBatcher: {MaxItemsPerBatch: 3, BatchInput: {r.$: $Input.r}}")), {"xs": xs, "r": 1})
    assert out == {"Items": [{"Items": [0, 1, 2], "BatchInput": {"r": 1}}, {"Items": [3, 4, 5], "BatchInput": {"r": 1}}, {"Items": [6], "BatchInput": {"r": 1}}]}
    # "aaaa" is 6 bytes as JSON (+1 separator); 20 bytes hold 2 of them beside the brackets
    out = run_ok(sdk, _flow(_map("ItemsPath: $Input.xs\nItemBatcher: {MaxInputBytesPerBatch: 20}")), {"xs": ["aaaa"] * 5})
    assert out == {"Items": [{"Items": ["aaaa", "aaaa"]}, {"Items": ["aaaa", "aaaa"]}, {"Items": ["aaaa"]}]}
    out = run_ok(sdk, _flow(_map("ItemsPath: $Input.xs\nMaxItems: 2")), {"xs": xs})
    assert out == {"Items": [0, 1]}


def test_result_writer_files_split_by_status_and_manifest(sdk: Any, buckets: Path) -> None:
    processor = "{StartAt: C, States: [{Type: Choice, Name: C, Branches: [{Condition: '$Input.x == 2', Next: F}], Default: P}, {Type: Pass, Name: P, End: true}, {Type: Fail, Name: F, Code: Bad, Detail: two}]}"
    extra = "ItemsPath: $Input.xs\nItemConstructor: {x.$: $Item}\nToleratedFailureCount: 1\nResultWriter: {Parameters: {Bucket: out, Prefix: res/}}"
    flow = create(sdk, _flow(_map(extra, processor=processor)))
    name = start(sdk, flow, {"xs": [1, 2, 3]})
    body = wait(sdk, flow, name)
    assert body.status == "Succeeded", body.status
    out = json.loads(body.output)
    run = out["MapRunName"]
    assert out["ResultWriterDetails"] == {"Bucket": "out", "Key": f"res/{run}/manifest.json"}
    manifest = json.loads((buckets / "out" / "res" / run / "manifest.json").read_text())
    assert manifest["MapRunName"] == run and manifest["DestinationBucket"] == "out"
    assert [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [f"res/{run}/SUCCEEDED_0.json"]
    ok = json.loads((buckets / "out" / "res" / run / "SUCCEEDED_0.json").read_text())
    bad = json.loads((buckets / "out" / "res" / run / "FAILED_0.json").read_text())
    assert [json.loads(e["Output"]) for e in ok] == [{"x": 1}, {"x": 3}]
    assert [(e["Error"], e["Cause"], e["Status"]) for e in bad] == [("Bad", "two", "Failed")]
    counts = describe_run(sdk, flow, name, run).item_counts
    assert (counts.total, counts.succeed, counts.failed) == (3, 2, 1)


FAILING = "{StartAt: C, States: [{Type: Choice, Name: C, Branches: [{Condition: '$Input.ok', Next: P}], Default: F}, {Type: Pass, Name: P, End: true}, {Type: Fail, Name: F, Code: Bad}]}"


@pytest.mark.parametrize(
    ("tolerance", "failures", "ends"),
    [
        ("", 0, "Succeeded"),
        ("", 1, "Failed"),
        ("ToleratedFailureCount: 2", 2, "Succeeded"),
        ("ToleratedFailureCount: 2", 3, "Failed"),
        ("ToleratedFailurePercentage: 50", 5, "Succeeded"),
        ("ToleratedFailurePercentage: 50", 6, "Failed"),
    ],
)
def test_tolerated_failures_both_ways(sdk: Any, tolerance: str, failures: int, ends: str) -> None:
    xs = [{"ok": i >= failures} for i in range(10)]
    flow = create(sdk, _flow(_map(f"ItemsPath: $Input.xs\nMaxConcurrency: 1\n{tolerance}", processor=FAILING)))
    name = start(sdk, flow, {"xs": xs})
    body = wait(sdk, flow, name)
    assert body.status == ends
    run = map_run_name(sdk, flow, name)
    got = describe_run(sdk, flow, name, run)
    counts = got.item_counts
    assert counts.total == 10
    assert counts.pending + counts.running + counts.succeed + counts.failed + counts.aborted == 10
    if ends == "Failed":
        assert body.error_code == "FnF.ExceedToleratedFailureThreshold" if hasattr(body, "error_code") else True
        assert got.status == "Failed"
        types = [e.type for e in history(sdk, flow, name)]
        assert "MapRunFailed" in types
    else:
        assert got.status == "Succeeded" and counts.failed == failures and counts.succeed == 10 - failures


def test_store_error_is_caught_and_retried(sdk: Any) -> None:
    extra = (
        "ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: data, ObjectName: missing.csv}}\n"
        "Retry: [{Errors: [FnF.ItemReaderFailed], MaxAttempts: 1, IntervalSeconds: 0}]\n"
        "Catch: [{Errors: [FnF.ItemReaderFailed], Next: Caught, OutputConstructor: {code.$: $Output.Code, detail.$: $Output.Detail}}]"
    )
    state = _map(extra).replace("    End: true\n", "    Next: Caught\n", 1) + "  - {Type: Pass, Name: Caught, End: true}\n"
    flow = create(sdk, _flow(state))
    name = start(sdk, flow)
    body = wait(sdk, flow, name)
    assert body.status == "Succeeded"
    out = json.loads(body.output)
    assert out["code"] == "FnF.ItemReaderFailed" and "NoSuchKey" in out["detail"]
    starts = [e for e in history(sdk, flow, name) if e.type == "MapRunStarted"]
    assert len(starts) == 2  # the retry is a new MapRun
    assert len({json.loads(e.event_detail)["output"]["MapRunName"] for e in starts}) == 2


WAITING = "{StartAt: W, States: [{Type: Wait, Name: W, Seconds.$: $Input.s, End: true}]}"


def _poll(sdk: Any, flow: str, name: str, run: str, until: Any, cap: int | None = None, timeout: float = 90) -> Any:
    """DescribeMapRun until `until(body)`; every answer's counts add up to Total, and Running stays within `cap`."""
    deadline = time.monotonic() + timeout
    while True:
        got = describe_run(sdk, flow, name, run)
        c = got.item_counts
        assert c.pending + c.running + c.succeed + c.failed + c.aborted == c.total, c
        if cap is not None:
            assert c.running <= cap, (c.running, cap)
        if until(got):
            return got
        assert time.monotonic() < deadline, c
        time.sleep(0.05)


def test_update_map_run_raises_and_lowers_concurrency_in_flight(sdk: Any) -> None:
    flow = create(sdk, _flow(_map("ItemsPath: $Input.xs\nMaxConcurrency: 2", processor=WAITING, mode="Standard")))
    # 16 items of a second each: a few end before the raise, and 8 can still run at once after it
    name = start(sdk, flow, {"xs": [{"s": 1}] * 16})
    run = map_run_name(sdk, flow, name)
    got = _poll(sdk, flow, name, run, lambda b: b.item_counts.running == 2, cap=2)
    assert got.status == "Running" and got.concurrency == 2 and got.item_counts.total == 16
    answer = sdk.update_map_run(models.UpdateMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run, concurrency=8)).body
    assert answer.concurrency == 8 and answer.map_run_name == run
    _poll(sdk, flow, name, run, lambda b: b.item_counts.running == 8, cap=8)
    sdk.update_map_run(models.UpdateMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run, concurrency=1))
    _poll(sdk, flow, name, run, lambda b: b.item_counts.running <= 1 and b.concurrency == 1, cap=8)
    got = _poll(sdk, flow, name, run, lambda b: b.status != "Running", cap=1)  # never more than 1 from then on
    assert got.status == "Succeeded" and got.item_counts.succeed == 16 and got.stopped_time
    assert wait(sdk, flow, name).status == "Succeeded"
    from alibabacloud_tea_openapi.exceptions import ClientException

    with pytest.raises(ClientException) as info:
        sdk.update_map_run(models.UpdateMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run, concurrency=3))
    assert info.value.code == "MapRunAlreadyCompleted"
    with pytest.raises(ClientException) as info:
        describe_run(sdk, flow, name, "0" * 32)
    assert info.value.code == "MapRunNotExists" and info.value.status_code == 404


def test_update_map_run_tolerance_is_applied_at_once(sdk: Any) -> None:
    processor = "{StartAt: W, States: [{Type: Wait, Name: W, Seconds: 1, Next: C}, {Type: Choice, Name: C, Branches: [{Condition: '$Input.ok', Next: P}], Default: F}, {Type: Pass, Name: P, End: true}, {Type: Fail, Name: F, Code: Bad}]}"
    flow = create(sdk, _flow(_map("ItemsPath: $Input.xs\nMaxConcurrency: 1\nToleratedFailureCount: 5", processor=processor, mode="Standard")))
    name = start(sdk, flow, {"xs": [{"ok": False}] * 3 + [{"ok": True}] * 5})
    run = map_run_name(sdk, flow, name)
    _poll(sdk, flow, name, run, lambda b: b.item_counts.failed >= 2)
    answer = sdk.update_map_run(models.UpdateMapRunRequest(flow_name=flow, execution_name=name, map_run_name=run, tolerated_failed_count=0)).body
    assert answer.tolerated_failed_count == 0
    body = wait(sdk, flow, name)
    assert body.status == "Failed"
    got = describe_run(sdk, flow, name, run)
    assert got.status == "Failed" and got.tolerated_failed_count == 0 and got.item_counts.succeed == 0


def test_stopping_the_parent_stops_the_map_run_and_its_children(sdk: Any) -> None:
    flow = create(sdk, _flow(_map("ItemsPath: $Input.xs\nMaxConcurrency: 3", processor=WAITING, mode="Standard")))
    name = start(sdk, flow, {"xs": [{"s": 60}] * 10})
    run = map_run_name(sdk, flow, name)
    _poll(sdk, flow, name, run, lambda b: b.item_counts.running == 3, cap=3)
    sdk.stop_execution(models.StopExecutionRequest(flow_name=flow, execution_name=name, error="Halt", cause="test"))
    assert wait(sdk, flow, name).status == "Stopped"
    got = _poll(sdk, flow, name, run, lambda b: b.status == "Aborted" and b.item_counts.running == 0, timeout=60)
    assert (got.item_counts.aborted, got.item_counts.pending, got.item_counts.succeed) == (3, 7, 0)
    children = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, map_run_name=run)).body.executions
    assert [c.status for c in children] == ["Stopped"] * 3
    assert "MapRunStarted" in [e.type for e in history(sdk, flow, name)]


def test_list_executions_by_map_run_name_pages(sdk: Any) -> None:
    flow = create(sdk, _flow(_map("ItemsPath: $Input.xs")))
    name = start(sdk, flow, {"xs": list(range(5))})
    assert wait(sdk, flow, name).status == "Succeeded"
    run = map_run_name(sdk, flow, name)
    seen: list[str] = []
    token = None
    while True:
        body = sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, map_run_name=run, limit=2, next_token=token)).body
        seen += [e.name for e in body.executions]
        token = body.next_token
        if not token:
            break
    assert seen == [f"m{run}-{i}" for i in range(5)]
    assert sdk.list_executions(models.ListExecutionsRequest(flow_name=flow, map_run_name="f" * 32)).body.executions == []


# ---------------------------------------------------------------- a real S3 API (moto's server)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.motos3 import moto_s3

    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def s3_sdk(tmp_path_factory: pytest.TempPathFactory, moto: Any) -> Iterator[Any]:
    with running_service(tmp_path_factory.mktemp("dmaps3"), workers=1, timers=1, **moto.env()) as svc:
        yield svc.client()


def test_s3_every_source_type_and_result_files_read_back(s3_sdk: Any, moto: Any) -> None:
    s3 = moto.client()
    s3.create_bucket(Bucket="inbox")
    s3.create_bucket(Bucket="results")
    s3.put_object(Bucket="inbox", Key="rows.csv", Body=b"id,v\n" + b"".join(f"{i},{i * i}\n".encode() for i in range(25)))
    s3.put_object(Bucket="inbox", Key="list.json", Body=json.dumps([{"n": i} for i in range(4)]).encode())
    for key in ("p/1", "p/2"):
        s3.put_object(Bucket="inbox", Key=key, Body=b"x")
    s3.put_object(Bucket="inbox", Key="inv/d.csv.gz", Body=gzip.compress(b'"inbox","p%2F1","1"\n'))
    s3.put_object(Bucket="inbox", Key="inv/manifest.json", Body=json.dumps({"fileSchema": "Bucket, Key, Size", "files": [{"key": "inv/d.csv.gz"}]}).encode())

    extra = (
        "ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: inbox, ObjectName.$: $Input.key}}\n"
        "ItemConstructor: {id.$: $Item.id, sq.$: $Item.v}\nItemBatcher: {MaxItemsPerBatch: 4}\nMaxConcurrency: 3\n"
        "ResultWriter: {Parameters: {Bucket: results, Prefix: run/}}"
    )
    out = run_ok(s3_sdk, _flow(_map(extra, mode="Standard")), {"key": "rows.csv"})
    run = out["MapRunName"]
    manifest = json.loads(s3.get_object(Bucket="results", Key=out["ResultWriterDetails"]["Key"])["Body"].read())
    assert manifest["ResultFiles"]["FAILED"] == [] and len(manifest["ResultFiles"]["SUCCEEDED"]) == 1
    entries = json.loads(s3.get_object(Bucket="results", Key=f"run/{run}/SUCCEEDED_0.json")["Body"].read())
    assert [e["ExecutionName"] for e in entries] == [f"m{run}-{i}" for i in range(7)]  # 25 items in batches of 4
    outputs = [json.loads(e["Output"]) for e in entries]
    assert [item for batch in outputs for item in batch["Items"]] == [{"id": str(i), "sq": str(i * i)} for i in range(25)]

    out = run_ok(s3_sdk, _flow(_map("ItemReader: {SourceType: OSS_JSON_LIST, SourceParameters: {Bucket: inbox, ObjectName: list.json}}")))
    assert out == {"Items": [{"n": i} for i in range(4)]}
    out = run_ok(s3_sdk, _flow(_map("ItemReader: {SourceType: OSS_OBJECTS, SourceParameters: {Bucket: inbox, Prefix: p/}}\nItemConstructor: {k.$: $Item.Key}")))
    assert out == {"Items": [{"k": "p/1"}, {"k": "p/2"}]}
    out = run_ok(s3_sdk, _flow(_map("ItemReader: {SourceType: OSS_INVENTORY_FILES, SourceParameters: {Bucket: inbox, ObjectName: inv/manifest.json}}")))
    assert out == {"Items": [{"Bucket": "inbox", "Key": "p/1", "Size": 1}]}


def test_s3_missing_bucket_fails_the_map_with_a_named_error(s3_sdk: Any) -> None:
    flow = create(s3_sdk, _flow(_map("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: nosuchbucket, ObjectName: x.csv}}")))
    name = start(s3_sdk, flow)
    body = wait(s3_sdk, flow, name)
    assert body.status == "Failed"
    failed = [e for e in history(s3_sdk, flow, name) if e.type == "MapRunFailed"]
    assert json.loads(failed[0].event_detail)["error"]["Code"] == "FnF.ItemReaderFailed"
    assert "NoSuchBucket" in json.loads(failed[0].event_detail)["error"]["Detail"]


@pytest.mark.parametrize(
    ("extra", "processor", "fragment"),
    [
        ("ItemsPath: $Input.xs\nToleratedFailurePercentage: 150", None, "States[0] (M): ToleratedFailurePercentage must be between 0 and 100"),
        ("ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: b}}", None, "States[0] (M).ItemReader.SourceParameters.ObjectName is required"),
        ("ItemsPath: $Input.xs", "{StartAt: T, States: [{Type: Task, Name: T, Action: 'FC:InvokeFunction', TaskMode: WaitForCustomCallback,"
         " Parameters: {resourceArn: 'acs:fc:cn-hangzhou:1:services/s/functions/f'}, End: true}]}", "Processor runs as Express children"),
    ],
)
def test_create_flow_names_the_field(sdk: Any, extra: str, processor: str | None, fragment: str) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    definition = _flow(_map(extra, processor=processor) if processor else _map(extra))
    with pytest.raises(ClientException) as info:
        create(sdk, definition)
    assert info.value.code == "InvalidArgument" and fragment in info.value.message
