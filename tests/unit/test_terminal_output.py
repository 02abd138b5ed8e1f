"""The terminal client's pure parts: where the endpoint and key come from, and the human output (issue 15)."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from openfnf import tables
from openfnf.clicmds import name_from_definition
from openfnf.client import resolve, split_endpoint

ENV = {"OPENFNF_ENDPOINT": "http://env:1", "OPENFNF_ACCESS_KEY_ID": "env-id", "OPENFNF_ACCESS_KEY_SECRET": "env-secret"}


def dev_dir(root: Path, endpoint: str | None = "http://dev:2") -> Path:
    """A data dir as `openfnf dev` leaves it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "credentials.yaml").write_text("accounts:\n- id: '1'\n  access_keys:\n  - {id: dev-id, secret: dev-secret}\n", encoding="utf-8")
    if endpoint:
        (root / "endpoint").write_text(endpoint + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1:8080", "http")),
        ("http://127.0.0.1:8080/", ("127.0.0.1:8080", "http")),
        ("https://fnf.example.com", ("fnf.example.com", "https")),
        ("HTTPS://h:9", ("h:9", "https")),
    ],
)
def test_split_endpoint(text: str, expected: tuple[str, str]) -> None:
    assert split_endpoint(text) == expected


def test_split_endpoint_refuses_other_schemes() -> None:
    with pytest.raises(click.BadParameter):
        split_endpoint("ftp://h:1")


def test_options_then_data_dir_then_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./.openfnf here
    data = dev_dir(tmp_path / "d")
    t = resolve("http://opt:3", "opt-id", "opt-secret", data, None, ENV)
    assert (t.endpoint, t.access_key_id, t.access_key_secret) == ("opt:3", "opt-id", "opt-secret")
    t = resolve(None, None, None, data, None, ENV)
    assert (t.endpoint, t.access_key_id, t.access_key_secret) == ("dev:2", "dev-id", "dev-secret")
    t = resolve(None, None, None, None, None, ENV)
    assert (t.endpoint, t.access_key_id, t.access_key_secret, t.region) == ("env:1", "env-id", "env-secret", "cn-hangzhou")
    t = resolve("opt:3", None, None, None, "cn-shanghai", ENV)  # each value from where it is first given
    assert (t.endpoint, t.access_key_id, t.region) == ("opt:3", "env-id", "cn-shanghai")
    t = resolve(None, None, None, dev_dir(tmp_path / "old", endpoint=None), None, ENV)  # a dir from before dev kept its endpoint
    assert (t.endpoint, t.access_key_id) == ("env:1", "dev-id")


def test_local_dev_dir_is_the_last_resort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(click.UsageError, match="no access key"):
        resolve(None, None, None, None, None, {})
    dev_dir(tmp_path / ".openfnf")
    t = resolve(None, None, None, None, None, {})
    assert (t.endpoint, t.access_key_id) == ("dev:2", "dev-id")
    assert resolve(None, None, None, None, None, ENV).access_key_id == "env-id"


def test_key_halves_go_together(tmp_path: Path) -> None:
    with pytest.raises(click.UsageError, match="go together"):
        resolve(None, "only-id", None, None, None, ENV)
    with pytest.raises(click.UsageError, match="no such directory"):
        resolve(None, None, None, tmp_path / "missing", None, ENV)


@pytest.mark.parametrize(
    ("kind", "detail", "shown"),
    [
        ("ExecutionStarted", {"input": {"a": 1}}, 'input {"a":1}'),
        ("StepFailed", {"error": "E", "cause": "why"}, "E: why"),
        ("ExecutionFailed", {"error": "FnF.Timeout"}, "FnF.Timeout"),
        ("TaskScheduled", {"resource": "acs:fc:::services/s/functions/f", "mode": "sync", "input": {}, "attempt": 2}, "acs:fc:::services/s/functions/f attempt 2"),
        ("TaskSucceeded", {"output": [1, 2]}, "output [1,2]"),
        ("IterationEntered", {"index": 3, "input": 5}, "#3 input 5"),
        ("StepExited", {"local": {}}, "local {}"),
        ("TaskSubmitted", {"attempt": 1}, ""),
    ],
)
def test_event_detail(kind: str, detail: dict[str, object], shown: str) -> None:
    assert tables.event_detail(kind, json.dumps(detail)) == shown


def test_event_detail_is_cut_to_a_line_unless_wide() -> None:
    detail = json.dumps({"input": {"token": "t" * 200}})
    short = tables.event_detail("StepEntered", detail)
    assert len(short) == tables.DETAIL_WIDTH and short.endswith("…")
    assert "t" * 200 in tables.event_detail("StepEntered", detail, None)
    assert tables.event_detail("X", "not json\nat all") == "not json at all"
    assert tables.event_detail("X", None) == ""


def test_history_table() -> None:
    events = [
        {"EventId": 1, "Time": "2026-01-02T03:04:05.006Z", "Type": "ExecutionStarted", "StepName": "", "EventDetail": '{"input":{}}'},
        {"EventId": 2, "Time": "2026-01-02T03:04:05.010Z", "Type": "StepFailed", "StepName": "S", "EventDetail": '{"error":"E","cause":"c"}'},
    ]
    lines = click.unstyle(tables.history(events)).splitlines()
    assert lines[0].split() == ["ID", "TIME", "(2026-01-02", "UTC)", "TYPE", "STATE", "DETAIL"]
    assert lines[1].split() == ["1", "03:04:05.006", "ExecutionStarted", "-", "input", "{}"]
    assert lines[2].split() == ["2", "03:04:05.010", "StepFailed", "S", "E:", "c"]
    assert "\x1b[31m" in tables.history(events)  # StepFailed in red (stripped later when not a terminal)
    two_days = [events[0], {**events[1], "Time": "2026-01-03T00:00:00.000Z"}]
    assert "2026-01-03T00:00:00.000Z" in tables.history(two_days)
    assert tables.history([]).endswith("(no events)")


def test_table_pads_by_the_text_not_the_colour_codes() -> None:
    out = tables.table(["A", "B"], [[("Failed", "red"), "x"], ["Succeeded", "y"]])
    lines = click.unstyle(out).splitlines()
    assert [line.index(line.split()[1]) for line in lines] == [11, 11, 11]
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.parametrize(
    ("definition", "path", "name"),
    [
        ("Type: StateMachine\nName: named\nStartAt: A\n", "x/def.yaml", "named"),
        ("version: v1\ntype: flow\nsteps: []\n", "x/orders.yaml", "orders"),
        (": not yaml [", "y/z.json", "z"),
    ],
)
def test_name_from_definition(definition: str, path: str, name: str) -> None:
    assert name_from_definition(definition, path) == name


def test_status_colours() -> None:
    assert [tables.status_colour(s) for s in ("Succeeded", "Failed", "TimedOut", "Stopped", "Running", "StepEntered", "TaskSubmitFailed")] == [
        "green", "red", "red", "yellow", "cyan", None, "red",
    ]  # fmt: skip


def test_wait_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    from openfnf.clicmds import Progress

    on_terminal = Progress("f/e")
    on_terminal.tty = True
    on_terminal.update("Running", 1.2)
    on_terminal.update("Running", 12)
    on_terminal.done()
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.split("\r")[1:] == ["waiting for f/e: Running (1s)", "waiting for f/e: Running (12s)", " " * 30, ""]

    in_a_log = Progress("f/e")
    in_a_log.tty = False
    for status, seconds in (("Running", 0), ("Running", 5), ("Succeeded", 7)):
        in_a_log.update(status, seconds)
    in_a_log.done()
    assert capsys.readouterr().err.splitlines() == ["waiting for f/e: Running (0s)", "waiting for f/e: Succeeded (7s)"]
