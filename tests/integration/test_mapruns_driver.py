"""The MapRun driver in process on a real redis-server: a run of pure children end to end, its report
to the parent's token, and a start the parent cancelled first (issue 16)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from common import keys
from common.fdl import parse_definition
from common.interpreter import advance
from common.mapruns import child_name, run_name, run_tag
from common.records import decode_hash
from common.settings import Settings
from common.tokens import make_token
from worker.mapruns import MapRuns

PARENT = "fid/parent"
FLOW = """Type: StateMachine
StartAt: M
States:
  - Type: Map
    Name: M
    ItemsPath: $Input.xs
    ItemConstructor: {v.$: $Item}
    ItemBatcher: {MaxItemsPerBatch: 2}
    MaxConcurrency: 2
    ProcessorConfig: {ExecutionMode: Express}
    Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}
    End: true
"""


def _command(settings: Settings, xs: list[Any]) -> dict[str, Any]:
    flow = parse_definition(FLOW)
    decision = advance(flow, None, [{"t": "Started", "input": {"xs": xs}, "name": "parent", "flow": "f"}], 1000,
                       token_for=lambda aid: make_token(settings.token_secret, "fid", "parent", aid))  # fmt: skip
    return decision.commands[0]


def _setup(r: redis.Redis, tmp_path: Path) -> tuple[Settings, MapRuns]:
    settings = Settings(buckets_dir=tmp_path)
    r.hset(keys.execution(PARENT), mapping={"acct": "A", "flow": "f", "status": "Running"})
    return settings, MapRuns(r, r, settings)


def test_a_run_of_pure_children_ends_and_reports_to_the_parent(r: redis.Redis, tmp_path: Path) -> None:
    settings, runs = _setup(r, tmp_path)
    command = _command(settings, [1, 2, 3, 4, 5])
    r.hset(keys.tasks(PARENT), command["id"], "waiting")
    outcome = runs.start(PARENT, command)
    name = run_name(PARENT, command["id"])
    assert outcome.succeeded and outcome.result == {"MapRunName": name}
    assert runs.start(PARENT, command).result == {"MapRunName": name}  # a redelivered start finds its run
    tag = run_tag("fid", name)
    for _ in range(20):
        runs.drive(tag)
        if decode_hash(r.hgetall(keys.maprun(tag)))["status"] == "Succeeded":
            break
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert (rec["status"], rec["total"], rec["succeeded"], rec["running"], rec["next"]) == ("Succeeded", "5", "5", "0", "3")
    child = decode_hash(r.hgetall(keys.execution(keys.execution_tag("fid", child_name(name, 2)))))
    assert child["status"] == "Succeeded" and json.loads(child["output"]) == {"Items": [{"v": 5}]}
    [event] = [json.loads(e) for e in r.lrange(keys.inbox(PARENT), 0, -1)]
    assert event["ok"] and event["output"] == {"Items": [{"Items": [{"v": 1}, {"v": 2}]}, {"Items": [{"v": 3}, {"v": 4}]}, {"Items": [{"v": 5}]}]}
    assert r.hget(keys.tasks(PARENT), command["id"]) == b"done"


def test_a_start_the_parent_cancelled_creates_no_run(r: redis.Redis, tmp_path: Path) -> None:
    settings, runs = _setup(r, tmp_path)
    command = _command(settings, [1])
    r.hset(keys.tasks(PARENT), command["id"], "done")
    outcome = runs.start(PARENT, command)
    assert not outcome.succeeded and outcome.error == "FnF.MapRunAborted"
    assert not r.exists(keys.maprun(run_tag("fid", run_name(PARENT, command["id"]))))


def test_an_execution_opens_at_most_the_limit_of_map_runs(r: redis.Redis, tmp_path: Path) -> None:
    settings = Settings(buckets_dir=tmp_path, maprun_max_open=2)
    r.hset(keys.execution(PARENT), mapping={"acct": "A", "flow": "f", "status": "Running"})
    runs = MapRuns(r, r, settings)
    command = _command(settings, [1])
    first, second, third = ({**command, "id": f"{command['id']}/{n}"} for n in (1, 2, 3))
    assert runs.start(PARENT, first).succeeded and runs.start(PARENT, second).succeeded
    refused = runs.start(PARENT, third)
    assert not refused.succeeded and refused.error == "FnF.MapRunLimitExceeded"
    assert runs.start(PARENT, first).succeeded  # the same run found again is not one more
    tag = run_tag("fid", run_name(PARENT, first["id"]))
    for _ in range(20):
        runs.drive(tag)
        if r.hget(keys.maprun(tag), "status") == b"Succeeded":
            break
    assert runs.start(PARENT, third).succeeded  # an ended run left room


def test_an_item_nested_past_the_json_limit_fails_the_run_with_a_reader_error(r: redis.Redis, tmp_path: Path) -> None:
    settings, runs = _setup(r, tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "items.json").write_text(json.dumps([1, [[[[[[[[[[1]]]]]]]]]]]))
    command = _command(Settings(buckets_dir=tmp_path, max_json_depth=5), [])
    command["params"] = {**command["params"], "source": {"type": "OSS_JSON_LIST", "Bucket": "data", "ObjectName": "items.json"}}
    del command["params"]["items"]
    r.hset(keys.tasks(PARENT), command["id"], "waiting")
    runs = MapRuns(r, r, Settings(buckets_dir=tmp_path, max_json_depth=5))
    runs.start(PARENT, command)
    tag = run_tag("fid", run_name(PARENT, command["id"]))
    for _ in range(20):
        runs.drive(tag)
        if r.hget(keys.maprun(tag), "status") == b"Failed":
            break
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert rec["status"] == "Failed" and rec["error"] == "FnF.ItemReaderFailed" and "nests deeper than 5" in rec["cause"]
    [event] = [json.loads(e) for e in r.lrange(keys.inbox(PARENT), 0, -1)]
    assert event["ok"] is False and event["error"] == "FnF.ItemReaderFailed"


def test_a_bug_in_the_driver_ends_the_run_as_failed(r: redis.Redis, tmp_path: Path, monkeypatch: Any) -> None:
    settings, runs = _setup(r, tmp_path)
    command = _command(settings, [1, 2])
    r.hset(keys.tasks(PARENT), command["id"], "waiting")
    runs.start(PARENT, command)

    def broken(*_: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(runs, "_next_children", broken)
    tag = run_tag("fid", run_name(PARENT, command["id"]))
    assert runs.drive(tag) == "driven"
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert rec["status"] == "Failed" and rec["error"] == "FnF.InternalError" and "KeyError" in rec["cause"]
    [event] = [json.loads(e) for e in r.lrange(keys.inbox(PARENT), 0, -1)]
    assert event["ok"] is False and event["error"] == "FnF.InternalError"


def test_a_redrive_waits_for_children_still_stopping_then_runs_again_only_the_unsucceeded(r: redis.Redis, tmp_path: Path) -> None:
    from worker.mapruns import child_ended

    settings, runs = _setup(r, tmp_path)
    command = _command(settings, [1, 2, 3, 4, 5])
    runs.start(PARENT, command)
    name = run_name(PARENT, command["id"])
    tag = run_tag("fid", name)
    for _ in range(20):
        runs.drive(tag)
        if r.hget(keys.maprun(tag), "status") == b"Succeeded":
            break
    # As if child 1 (items 3 and 4) had failed the run, which ended while the child was still stopping.
    ctag = keys.execution_tag("fid", child_name(name, 1))
    r.hset(keys.execution(ctag), mapping={"status": "Running", "acct": "A"})
    r.hset(keys.maprun(tag), mapping={"status": "Failed", "succeeded": 3, "running": 2, "kids": 1, "error": "FnF.ExceedToleratedFailureThreshold"})
    r.hset(keys.maprun_running(tag), "1", 2)
    redrive = {**command, "id": "99", "token": make_token(settings.token_secret, "fid", "parent", "99"),
               "params": {**command["params"], "redrive": {"name": name, "act": command["id"]}}}  # fmt: skip
    r.hset(keys.tasks(PARENT), "99", "waiting")
    assert runs.start(PARENT, redrive).result == {"MapRunName": name}  # the same run, not a new one
    runs.drive(tag)
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert (rec["status"], rec["rq"], rec["aid"]) == ("Failed", "1", "99")  # waits for the child still stopping
    r.hset(keys.execution(ctag), "status", "Stopped")
    assert child_ended(runs.scripts, r, settings, f"maprun:{tag}#1", "Stopped", 5000)
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert (rec["aborted"], rec["kids"], rec["dq"]) == ("2", "0", "5000")  # counted, and the run is driven
    runs.drive(tag)
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert (rec["status"], rec["failed"], rec["aborted"], rec["succeeded"], rec["running"], rec["redrives"]) == ("Running", "0", "0", "3", "2", "1")
    assert r.hget(keys.execution(ctag), "status") == b"Running" and r.hget(keys.execution(ctag), "redrives") == b"1"  # redriven in place
    r.hset(keys.execution(ctag), mapping={"status": "Succeeded", "output": json.dumps({"again": True})})
    child_ended(runs.scripts, r, settings, f"maprun:{tag}#1", "Succeeded", 6000)
    for _ in range(5):
        runs.drive(tag)
    rec = decode_hash(r.hgetall(keys.maprun(tag)))
    assert (rec["status"], rec["succeeded"], rec["total"]) == ("Succeeded", "5", "5")
    event = json.loads(r.lrange(keys.inbox(PARENT), -1, -1)[0])
    assert event["ok"] and event["id"] == "99"  # reported to the redrive's task
    assert event["output"]["Items"] == [{"Items": [{"v": 1}, {"v": 2}]}, {"again": True}, {"Items": [{"v": 5}]}]
    assert r.ttl(keys.maprun(tag)) > 0
