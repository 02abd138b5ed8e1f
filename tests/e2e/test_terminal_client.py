"""The terminal client (`openfnf flows|executions|tasks`, issue 15) against a real service.

Most commands run in-process through click's CliRunner (the same code, the real front door, the
official SDK underneath); the ones whose exit status and streams matter run as `openfnf` processes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from openfnf.cli import main
from openfnf.redisserver import free_port
from tests.conftest import ROOT, Service, running_service

pytestmark = pytest.mark.e2e

FUNCTIONS = ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

HELLO = """Type: StateMachine
SpecVersion: v1
Name: hello
StartAt: Greet
States:
  - Type: Pass
    Name: Greet
    OutputConstructor:
      greeting.$: $Input.greeting
    End: true
"""
FAILS = """Type: StateMachine
SpecVersion: v1
StartAt: Reject
States:
  - Type: Fail
    Name: Reject
    Code: OrderRejected
    Detail: the order was rejected
"""
# examples/callback.yaml's shape: the task waits until its token is reported; the function hands the
# token to the test (tests/handlers.py keep_token) instead of reporting it.
CALLBACK = """version: v1
type: flow
steps:
  - type: task
    name: approve
    resourceArn: acs:fc:::services/demo/functions/keep_token
    pattern: waitForCallback
    inputMappings:
      - {target: token, source: $context.task.token}
      - {target: order, source: $input.order}
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("cli"), workers=1, OPENFNF_FUNCTIONS=str(FUNCTIONS)) as service:
        yield service


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The definition files the tests create flows from."""
    root = tmp_path_factory.mktemp("defs")
    for name, text in (("hello.yaml", HELLO), ("fails.yaml", FAILS), ("callback.yaml", CALLBACK)):
        (root / name).write_text(text, encoding="utf-8")
    return root


def client_env(svc: Service) -> dict[str, str]:
    """The variables the client reads (README's names)."""
    return {
        "OPENFNF_ENDPOINT": f"http://{svc.endpoint}",
        "OPENFNF_ACCESS_KEY_ID": svc.key_id,
        "OPENFNF_ACCESS_KEY_SECRET": svc.secret,
    }


def cli(svc: Service, *args: str, color: bool = False, env: dict[str, str] | None = None) -> Result:
    """`openfnf ARGS` in-process, against the service."""
    return CliRunner().invoke(main, list(args), env={**client_env(svc), "NO_COLOR": None, **(env or {})}, color=color)  # type: ignore[dict-item]


def run(svc: Service | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`openfnf ARGS` as a process (stdout and stderr not a terminal)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_") and k != "NO_COLOR"}
    full = {**base, **(client_env(svc) if svc is not None else {}), **(env or {})}
    return subprocess.run([sys.executable, "-m", "openfnf", *args], env=full, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout


def create(svc: Service, defs: Path, file: str, *extra: str) -> None:
    """Create a flow from a definition file, unless an earlier test did."""
    result = cli(svc, "flows", "create", *extra, "--file", str(defs / file))
    assert result.exit_code == 0 or "FlowAlreadyExists" in result.stderr, result.output


def token(svc: Service) -> str:
    got = redis.Redis.from_url(svc.redis_url).blpop("test:tokens", timeout=30)
    assert got is not None, "the callback task's function never received its token"
    return str(got[1].decode())


# ---------------------------------------------------------------------------------- flows


def test_flows_create_list_describe_update_delete(svc: Service, defs: Path) -> None:
    # No NAME: the definition's Name (hello), else the file's stem (fails).
    assert "created flow hello" in ok(cli(svc, "flows", "create", "--file", str(defs / "hello.yaml"), "--description", "greets"))
    assert "created flow fails" in ok(cli(svc, "flows", "create", "--file", str(defs / "fails.yaml")))
    assert "created flow other" in ok(cli(svc, "flows", "create", "other", "--file", str(defs / "fails.yaml")))

    table = ok(cli(svc, "flows", "list"))
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "TYPE", "MODE", "LAST", "MODIFIED", "DESCRIPTION"]
    assert {row.split()[0] for row in rows} >= {"hello", "fails", "other"}
    assert any(row.split()[:3] == ["hello", "FDL", "Standard"] and row.endswith("greets") for row in rows)

    listed = run(svc, "flows", "list", "--json")  # a real process, its JSON parsed back
    assert listed.returncode == 0, listed.stderr
    by_name = {f["Name"]: f for f in json.loads(listed.stdout)["Flows"]}
    assert by_name["hello"]["Definition"] == HELLO and by_name["hello"]["Description"] == "greets"

    described = ok(cli(svc, "flows", "describe", "hello"))
    assert re.search(r"^Description:\s+greets$", described, re.M) and HELLO.strip() in described
    assert json.loads(ok(cli(svc, "flows", "describe", "hello", "--json")))["Definition"] == HELLO

    ok(cli(svc, "flows", "update", "other", "--description", "changed"))
    assert json.loads(ok(cli(svc, "flows", "describe", "other", "--json")))["Description"] == "changed"
    assert "deleted flow other" in ok(cli(svc, "flows", "delete", "other"))
    gone = cli(svc, "flows", "describe", "other")
    assert gone.exit_code == 1 and gone.stderr.startswith("Error: FlowNotExists: ")


def test_flows_list_pages(svc: Service, defs: Path) -> None:
    for name in ("page_a", "page_b", "page_c"):
        create(svc, defs, "fails.yaml", name)
    first = json.loads(ok(cli(svc, "flows", "list", "--limit", "2", "--json")))
    assert len(first["Flows"]) == 2 and first["NextToken"]
    rest = json.loads(ok(cli(svc, "flows", "list", "--limit", "2", "--next-token", first["NextToken"], "--all", "--json")))
    everything = json.loads(ok(cli(svc, "flows", "list", "--limit", "2", "--all", "--json")))
    assert "NextToken" not in everything and "NextToken" not in rest
    names = [f["Name"] for f in everything["Flows"]]
    assert names == [f["Name"] for f in first["Flows"] + rest["Flows"]]
    assert {"page_a", "page_b", "page_c"} <= set(names)
    human = cli(svc, "flows", "list", "--limit", "1")
    assert "--next-token" in human.stderr and len(ok(human).splitlines()) == 2


# ---------------------------------------------------------------------------------- executions


def test_start_then_wait_succeeded_exits_0(svc: Service, defs: Path) -> None:
    create(svc, defs, "hello.yaml")
    started = run(svc, "executions", "start", "--flow", "hello", "--name", "ok1", "--input", '{"greeting": "hi", "x": 1}', "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["Name"] == "ok1"
    waited = run(svc, "executions", "wait", "ok1", "--flow", "hello", "--json")
    assert waited.returncode == 0, waited.stderr
    body = json.loads(waited.stdout)
    assert body["Status"] == "Succeeded" and json.loads(body["Output"]) == {"greeting": "hi"}
    human = run(svc, "executions", "wait", "ok1", "--flow", "hello")
    assert human.returncode == 0
    assert re.search(r"^Status:\s+Succeeded$", human.stdout, re.M) and '"greeting": "hi"' in human.stdout
    assert "waiting for hello/ok1: Succeeded" in human.stderr  # the progress line goes to stderr
    assert not ANSI.search(human.stdout + human.stderr)  # not a terminal: no colour codes


def test_wait_on_a_failed_execution_exits_3_with_error_and_cause(svc: Service, defs: Path) -> None:
    create(svc, defs, "fails.yaml")
    done = run(svc, "executions", "start", "--flow", "fails", "--name", "bad1", "--wait")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert re.search(r"^Status:\s+Failed$", done.stdout, re.M)
    assert re.search(r"^Error:\s+OrderRejected$", done.stdout, re.M) and re.search(r"^Cause:\s+the order was rejected$", done.stdout, re.M)
    again = cli(svc, "executions", "wait", "bad1", "--flow", "fails", "--json")
    assert again.exit_code == 3 and json.loads(again.stdout)["Status"] == "Failed"


def test_history_prints_the_events(svc: Service, defs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create(svc, defs, "fails.yaml")
    assert cli(svc, "executions", "start", "--flow", "fails", "--name", "hist1", "--wait").exit_code == 3
    text = ok(cli(svc, "executions", "history", "hist1", "--flow", "fails"))
    header, *rows = text.splitlines()
    assert header.split()[:2] == ["ID", "TIME"] and header.split()[-3:] == ["TYPE", "STATE", "DETAIL"]
    types = [row.split()[2] for row in rows]
    assert types == ["ExecutionStarted", "StepEntered", "StepStarted", "StepFailed", "ExecutionFailed"]
    assert rows[3].split()[3] == "Reject" and rows[3].endswith("OrderRejected: the order was rejected")
    events = json.loads(ok(cli(svc, "executions", "history", "hist1", "--flow", "fails", "--json")))["Events"]
    assert [e["EventId"] for e in events] == [1, 2, 3, 4, 5] and [e["Type"] for e in events] == types
    monkeypatch.setattr("openfnf.clicmds.HISTORY_PAGE", 2)  # pages of two: the client follows NextToken
    paged = json.loads(ok(cli(svc, "executions", "history", "hist1", "--flow", "fails", "--json")))["Events"]
    assert paged == events
    described = ok(cli(svc, "executions", "describe", "hist1", "--flow", "fails"))  # the error from the last page
    assert re.search(r"^Error:\s+OrderRejected$", described, re.M)


def test_list_filters_by_status_and_pages(svc: Service, defs: Path) -> None:
    create(svc, defs, "hello.yaml")
    create(svc, defs, "callback.yaml", "listed")
    for i in range(3):
        assert cli(svc, "executions", "start", "--flow", "listed", "--name", f"l{i}", "--input", '{"order": 1}').exit_code == 0
        token(svc)  # each is waiting for its callback
    ok(cli(svc, "executions", "stop", "l1", "--flow", "listed", "--error", "Manual", "--cause", "by hand"))
    assert cli(svc, "executions", "wait", "l1", "--flow", "listed").exit_code == 3

    running = json.loads(ok(cli(svc, "executions", "list", "--flow", "listed", "--status", "Running", "--json")))
    assert [e["Name"] for e in running["Executions"]] == ["l0", "l2"]
    table = ok(cli(svc, "executions", "list", "--flow", "listed", "--status", "Stopped"))
    assert [row.split()[:2] for row in table.splitlines()[1:]] == [["l1", "Stopped"]]

    page = json.loads(ok(cli(svc, "executions", "list", "--flow", "listed", "--limit", "2", "--json")))
    assert [e["Name"] for e in page["Executions"]] == ["l0", "l1"] and page["NextToken"]
    rest = json.loads(ok(cli(svc, "executions", "list", "--flow", "listed", "--limit", "2", "--next-token", page["NextToken"], "--json")))
    assert [e["Name"] for e in rest["Executions"]] == ["l2"]
    everything = json.loads(ok(cli(svc, "executions", "list", "--flow", "listed", "--limit", "1", "--all", "--json")))
    assert [e["Name"] for e in everything["Executions"]] == ["l0", "l1", "l2"]

    described = ok(cli(svc, "executions", "describe", "l1", "--flow", "listed"))
    assert re.search(r"^Status:\s+Stopped$", described, re.M) and re.search(r"^Error:\s+Manual$", described, re.M)
    for name in ("l0", "l2"):  # end them, so that nothing waits when the service stops
        ok(cli(svc, "executions", "stop", name, "--flow", "listed"))


def test_wait_gives_up_after_its_timeout_with_exit_4(svc: Service, defs: Path) -> None:
    create(svc, defs, "callback.yaml", "held")
    ok(cli(svc, "executions", "start", "--flow", "held", "--name", "h1", "--input", '{"order": 2}'))
    token(svc)
    waited = cli(svc, "executions", "wait", "h1", "--flow", "held", "--timeout", "1")
    assert waited.exit_code == 4 and "still Running" in waited.stderr
    stopped = cli(svc, "executions", "stop", "h1", "--flow", "held")
    assert stopped.exit_code == 0 and "h1" in stopped.stdout


# ---------------------------------------------------------------------------------- tasks


def test_report_succeeded_and_failed_with_the_token_of_a_waiting_task(svc: Service, defs: Path) -> None:
    create(svc, defs, "callback.yaml", "approval")
    ok(cli(svc, "executions", "start", "--flow", "approval", "--name", "yes", "--input", '{"order": 7}'))
    given = token(svc)
    reported = run(svc, "tasks", "report-succeeded", given, "--output", '{"approved": true}')
    assert reported.returncode == 0 and "reported succeeded" in reported.stdout, reported.stderr
    assert ok(cli(svc, "executions", "wait", "yes", "--flow", "approval"))
    body = json.loads(ok(cli(svc, "executions", "describe", "yes", "--flow", "approval", "--json")))
    assert body["Status"] == "Succeeded" and json.loads(body["Output"]) == {"approved": True}

    twice = run(svc, "tasks", "report-failed", given, "--error", "Late")
    assert twice.returncode == 1 and twice.stderr.startswith("Error: TaskAlreadyCompleted: ") and "Traceback" not in twice.stderr

    ok(cli(svc, "executions", "start", "--flow", "approval", "--name", "no", "--input", '{"order": 8}'))
    failed = cli(svc, "tasks", "report-failed", token(svc), "--error", "Rejected", "--cause", "the reviewer said no", "--json")
    assert failed.exit_code == 0 and isinstance(json.loads(failed.stdout)["EventId"], int)
    ended = cli(svc, "executions", "wait", "no", "--flow", "approval")
    assert ended.exit_code == 3
    assert re.search(r"^Error:\s+Rejected$", ended.stdout, re.M) and re.search(r"^Cause:\s+the reviewer said no$", ended.stdout, re.M)


def test_the_token_is_readable_in_the_wide_history(svc: Service, defs: Path) -> None:
    create(svc, defs, "callback.yaml", "by_hand")
    ok(cli(svc, "executions", "start", "--flow", "by_hand", "--name", "w1", "--input", '{"order": 9}'))
    given = token(svc)
    assert given in ok(cli(svc, "executions", "history", "w1", "--flow", "by_hand", "--wide"))
    assert given not in ok(cli(svc, "executions", "history", "w1", "--flow", "by_hand"))  # cut to a line by default
    ok(cli(svc, "tasks", "report-succeeded", given))
    assert cli(svc, "executions", "wait", "w1", "--flow", "by_hand").exit_code == 0


# ---------------------------------------------------------------------------------- errors, colour, config


def test_unknown_flow_is_a_clean_error(svc: Service) -> None:
    for args in (["executions", "list", "--flow", "nope"], ["flows", "describe", "nope"], ["executions", "start", "--flow", "nope"]):
        done = run(svc, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.strip() == "Error: FlowNotExists: Flow nope does not exist." and "Traceback" not in done.stderr
        assert done.stdout == ""


def test_wrong_secret_and_bad_input_are_refused(svc: Service, defs: Path) -> None:
    create(svc, defs, "hello.yaml")
    wrong = run(svc, "flows", "list", env={"OPENFNF_ACCESS_KEY_SECRET": "not-the-secret"})
    assert wrong.returncode == 1 and wrong.stderr.startswith("Error: SignatureNotMatch: "), wrong.stderr
    not_json = cli(svc, "executions", "start", "--flow", "hello", "--input", "{nope")
    assert not_json.exit_code == 2 and "--input" in not_json.stderr
    not_object = cli(svc, "executions", "start", "--flow", "hello", "--input", "[1]")
    assert not_object.exit_code == 1 and not_object.stderr.startswith("Error: InvalidArgument: ")
    nowhere = run(None, "flows", "list", "--endpoint", f"http://127.0.0.1:{free_port()}", "--access-key-id", "a", "--access-key-secret", "b")
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("Error: ConnectionError: cannot reach http://127.0.0.1:")


def test_statuses_are_coloured_on_a_terminal_and_never_under_no_color(svc: Service, defs: Path) -> None:
    create(svc, defs, "fails.yaml")
    cli(svc, "executions", "start", "--flow", "fails", "--name", "col1", "--wait")
    coloured = ok(cli(svc, "executions", "list", "--flow", "fails", "--status", "Failed", color=True))
    assert "\x1b[31mFailed" in coloured  # red
    assert "\x1b[31mExecutionFailed" in ok(cli(svc, "executions", "history", "col1", "--flow", "fails", color=True))
    plain = ok(cli(svc, "executions", "list", "--flow", "fails", "--status", "Failed", color=True, env={"NO_COLOR": "1"}))
    assert not ANSI.search(plain) and ANSI.sub("", coloured) == plain
    assert not ANSI.search(ok(cli(svc, "executions", "list", "--flow", "fails", "--status", "Failed", color=False)))


def test_options_win_over_the_variables(svc: Service) -> None:
    broken = {"OPENFNF_ENDPOINT": "http://127.0.0.1:1", "OPENFNF_ACCESS_KEY_ID": "nobody", "OPENFNF_ACCESS_KEY_SECRET": "x"}
    done = run(
        None, "flows", "list", "--json", "--endpoint", f"http://{svc.endpoint}", "--access-key-id", svc.key_id,
        "--access-key-secret", svc.secret, env=broken,
    )  # fmt: skip
    assert done.returncode == 0 and "Flows" in json.loads(done.stdout), done.stderr


def test_data_dir_of_openfnf_dev(tmp_path: Path, defs: Path) -> None:
    """`openfnf dev --data-dir D` keeps its endpoint and key there; `--data-dir D` is all the client needs."""
    from tests.e2e.test_dev_command import start_dev, stop_dev

    data_dir, port = tmp_path / "data", free_port()
    proc, info = start_dev(data_dir, port, tmp_path / "dev.log")
    try:
        assert (data_dir / "endpoint").read_text().strip() == info["endpoint"]
        made = run(None, "flows", "create", "--file", str(defs / "hello.yaml"), "--data-dir", str(data_dir))
        assert made.returncode == 0, made.stderr
        done = run(None, "executions", "start", "--flow", "hello", "--input", '{"greeting": "from dev"}', "--wait", "--json", "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stderr
        assert json.loads(json.loads(done.stdout)["Output"]) == {"greeting": "from dev"}
        in_dir = subprocess.run(  # run beside it: ./.openfnf is the default data dir
            [sys.executable, "-m", "openfnf", "flows", "list", "--json"], capture_output=True, text=True, timeout=60,
            cwd=tmp_path, env={**{k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert in_dir.returncode != 0  # no ./.openfnf in tmp_path
        (tmp_path / ".openfnf").symlink_to(data_dir)
        in_dir = subprocess.run(
            [sys.executable, "-m", "openfnf", "flows", "list", "--json"], capture_output=True, text=True, timeout=60,
            cwd=tmp_path, env={**{k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert in_dir.returncode == 0, in_dir.stderr
        assert [f["Name"] for f in json.loads(in_dir.stdout)["Flows"]] == ["hello"]
    finally:
        assert stop_dev(proc) == 0


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    """The README's terminal client example, line by line in a shell, with hello.yaml holding the README's definition."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    definition = re.search(r'definition = """(.*?)"""', readme, re.S)
    assert definition, "README.md's SDK example has no definition"
    (tmp_path / "hello.yaml").write_text(definition.group(1), encoding="utf-8")
    section = readme.split("## Terminal client", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in re.findall(r"```sh\n(.*?)```", section, re.S)[0].splitlines() if line.strip()]
    assert lines[0].startswith("openfnf flows create --file hello.yaml") and len(lines) >= 5
    with running_service(tmp_path / "svc", workers=1, timers=0) as service:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPENFNF_")}, **client_env(service),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }  # fmt: skip
        outputs = []
        for line in lines:
            done = subprocess.run(["bash", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            outputs.append(done.stdout)
    assert re.search(r'^Status:\s+Succeeded$', outputs[3], re.M) and '"greeting": "hi"' in outputs[3]  # wait printed the output
    assert json.loads(outputs[-1])["Name"] == "hello"
