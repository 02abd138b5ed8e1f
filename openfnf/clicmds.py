"""`openfnf flows|executions|tasks`: the terminal client, over the signed API through the official SDK."""
from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from openfnf import tables
from openfnf.client import Target, call, resolve, sdk_client
from openfnf.tables import ENDED, echo

STATUSES = ["Starting", "Running", "Stopped", "Succeeded", "Failed", "TimedOut"]
EXIT_NOT_SUCCEEDED = 3  # `wait`: the execution ended Failed, Stopped or TimedOut
EXIT_STILL_RUNNING = 4  # `wait --timeout`: it had not ended when the time was up
POLL_SECONDS = 5  # WaitTimeSeconds of each long-poll of `wait` (the service allows 0..60): the progress line's refresh
HISTORY_PAGE = 1000  # GetExecutionHistory's largest Limit


@dataclass
class Api:
    """The signed API of one front door, as the command's options chose it."""

    target: Target
    as_json: bool
    _sdk: Any = field(default=None, repr=False)

    def __call__(self, action: str, **params: Any) -> dict[str, Any]:
        """Call `action` (ListFlows, ...) with the SDK; the response body in its wire shape (RequestId dropped)."""
        from alibabacloud_fnf20190315 import models

        if self._sdk is None:
            self._sdk = sdk_client(self.target)
        request = getattr(models, f"{action}Request")(**{k: v for k, v in params.items() if v is not None})
        method = getattr(self._sdk, "".join(f"_{c.lower()}" if c.isupper() else c for c in action).lstrip("_"))
        body: dict[str, Any] = call(self.target, lambda: method(request).body.to_map())
        body.pop("RequestId", None)
        return body

    def extension(self, action: str, **params: Any) -> dict[str, Any]:
        """Call an OpenFnF extension action (no SDK method: the SDK's generic call_api); the body (RequestId dropped)."""
        from openfnf.extensions import call_action

        if self._sdk is None:
            self._sdk = sdk_client(self.target)
        body = call(self.target, lambda: call_action(self._sdk, action, params))
        body.pop("RequestId", None)
        return body

    def show(self, body: Any, human: Callable[[], str]) -> None:
        """Print the body as JSON under --json, else the human form."""
        if self.as_json:
            click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        else:
            echo(human())


def connected(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the endpoint/key options and --json; the command gets an `Api` as its first argument."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any, endpoint: str | None, access_key_id: str | None, access_key_secret: str | None,
        data_dir: Path | None, region: str | None, as_json: bool, **kwargs: Any,
    ) -> Any:  # fmt: skip
        api = Api(resolve(endpoint, access_key_id, access_key_secret, data_dir, region), as_json)
        return fn(api, *args, **kwargs)

    for option in reversed([
        click.option("--endpoint", help="Front door, http://HOST:PORT (default: OPENFNF_ENDPOINT, else --data-dir's, else 127.0.0.1:8080)."),
        click.option("--access-key-id", help="Access key id (default: OPENFNF_ACCESS_KEY_ID, else --data-dir's key)."),
        click.option("--access-key-secret", help="Its secret (default: OPENFNF_ACCESS_KEY_SECRET)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data dir of `openfnf dev`: its endpoint and key (default: ./.openfnf if nothing else is given)."),
        click.option("--region", help="Region id to sign with (default: OPENFNF_REGION or cn-hangzhou)."),
        click.option("--json", "as_json", is_flag=True, help="Print the API's response as JSON (for scripts)."),
    ]):  # fmt: skip
        wrapper = option(wrapper)
    return wrapper


def _paging(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--all", "all_pages", is_flag=True, help="Follow NextToken to the end.")(fn)
    fn = click.option("--next-token", help="Continue a listing where the last page ended.")(fn)
    return click.option("--limit", type=click.IntRange(1), help="Page size (the service's default without it).")(fn)


def _pages(api: Api, action: str, key: str, all_pages: bool, next_token: str | None, **params: Any) -> dict[str, Any]:
    """One page of a listing, or every page (--all) joined into one body."""
    body = api(action, next_token=next_token, **params)
    items: list[Any] = list(body.get(key) or [])
    while all_pages and body.get("NextToken"):
        body = api(action, next_token=body["NextToken"], **params)
        items.extend(body.get(key) or [])
    out: dict[str, Any] = {key: items}
    if body.get("NextToken"):
        out["NextToken"] = body["NextToken"]
    return out


def _more(body: dict[str, Any]) -> None:
    if body.get("NextToken"):
        echo(f"(more: --next-token {body['NextToken']}, or --all)", err=True)


def _json_arg(text: str | None, hint: str) -> str | None:
    """Check that an option's value is JSON before sending it."""
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=hint) from None
    return text


def _read(path: Path | str) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(str(exc), param_hint="--file") from None


def name_from_definition(definition: str, path: str) -> str:
    """A flow's name when none is given: the definition's `Name` (new syntax), else the file's stem."""
    try:
        doc = yaml.safe_load(definition)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("Name"), str) and doc["Name"]:
        return str(doc["Name"])
    if path == "-":
        raise click.UsageError("give the flow's NAME when the definition comes from stdin and has no Name")
    return Path(path).stem


# --------------------------------------------------------------------------- flows


@click.group()
def flows() -> None:
    """Flows: list, describe, create, update, delete."""


@flows.command("list")
@_paging
@connected
def flows_list(api: Api, limit: int | None, next_token: str | None, all_pages: bool) -> None:
    """List the account's flows."""
    body = _pages(api, "ListFlows", "Flows", all_pages, next_token, limit=limit)
    api.show(body, lambda: tables.flows_table(body["Flows"]))
    if not api.as_json:
        _more(body)


@flows.command("describe")
@click.argument("name")
@click.option("--version", "flow_version", help="The flow as this version froze it.")
@connected
def flows_describe(api: Api, name: str, flow_version: str | None) -> None:
    """Show a flow and its definition."""
    body = api("DescribeFlow", name=name, flow_version=flow_version)
    api.show(body, lambda: tables.flow_fields(body))


@flows.command("create")
@click.argument("name", required=False)
@click.option("--file", "file", required=True, help="The definition (YAML or JSON, either syntax); '-' reads stdin.")
@click.option("--description", default="", help="Description.")
@click.option("--execution-mode", type=click.Choice(["Standard", "Express"]), help="Execution mode (default Standard).")
@click.option("--role-arn", help="RoleArn, kept with the flow.")
@connected
def flows_create(api: Api, name: str | None, file: str, description: str, execution_mode: str | None, role_arn: str | None) -> None:
    """Create a flow from a definition file; NAME defaults to the definition's Name, else the file's stem."""
    definition = _read(file)
    name = name or name_from_definition(definition, file)
    body = api("CreateFlow", name=name, definition=definition, description=description, type="FDL", execution_mode=execution_mode, role_arn=role_arn)
    api.show(body, lambda: f"created flow {body.get('Name', name)}")


@flows.command("update")
@click.argument("name")
@click.option("--file", "file", help="The new definition; '-' reads stdin.")
@click.option("--description", help="The new description.")
@click.option("--role-arn", help="The new RoleArn.")
@connected
def flows_update(api: Api, name: str, file: str | None, description: str | None, role_arn: str | None) -> None:
    """Change a flow's definition, description or role."""
    if file is None and description is None and role_arn is None:
        raise click.UsageError("nothing to change: give --file, --description or --role-arn")
    definition = _read(file) if file is not None else None
    body = api("UpdateFlow", name=name, definition=definition, description=description, role_arn=role_arn)
    api.show(body, lambda: f"updated flow {name}")


@flows.command("delete")
@click.argument("name")
@connected
def flows_delete(api: Api, name: str) -> None:
    """Delete a flow."""
    body = api("DeleteFlow", name=name)
    api.show(body, lambda: f"deleted flow {name}")


# --------------------------------------------------------------------------- executions


@click.group()
def executions() -> None:
    """Executions: start, list, describe, history, wait, stop."""


flow_option = click.option("--flow", "flow", required=True, help="The flow's name.")


def _events(api: Api, flow: str, name: str) -> list[dict[str, Any]]:
    """Every history event of an execution, page by page."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = api("GetExecutionHistory", flow_name=flow, execution_name=name, limit=HISTORY_PAGE, next_token=token)
        events.extend(page.get("Events") or [])
        token = page.get("NextToken")
        if not token:
            return events


def _failure(api: Api, flow: str, name: str) -> tuple[str, str] | None:
    """The error and cause of an ended execution that did not succeed, from its last history event."""
    events = _events(api, flow, name)
    try:
        detail = json.loads(events[-1].get("EventDetail") or "{}") if events else {}
    except ValueError:
        return None
    if not isinstance(detail, dict) or "error" not in detail:
        return None
    cause = detail.get("cause")
    return str(detail["error"]), "" if cause is None else tables.compact(cause)


def _show_execution(api: Api, body: dict[str, Any]) -> None:
    if api.as_json:
        api.show(body, str)
        return
    failure = None
    if body.get("Status") in ENDED and body.get("Status") != "Succeeded":
        failure = _failure(api, str(body.get("FlowName")), str(body.get("Name")))
    echo(tables.execution_fields(body, failure))


@executions.command("start")
@flow_option
@click.option("--name", help="Execution name (default: a generated UUID).")
@click.option("--input", "input_", help="Input, a JSON object.")
@click.option("--input-file", type=click.Path(dir_okay=False, path_type=Path), help="Input read from a file ('-': stdin).")
@click.option("--qualifier", help="Version or alias to run.")
@click.option("--wait", "wait_", is_flag=True, help="Then wait until it ends (exit status as `executions wait`).")
@connected
def executions_start(api: Api, flow: str, name: str | None, input_: str | None, input_file: Path | None, qualifier: str | None, wait_: bool) -> None:
    """Start an execution of a flow."""
    if input_ is not None and input_file is not None:
        raise click.UsageError("--input and --input-file are exclusive")
    text = _read(input_file) if input_file is not None else input_
    body = api("StartExecution", flow_name=flow, execution_name=name, input=_json_arg(text, "--input"), qualifier=qualifier)
    if wait_:
        _wait(api, flow, str(body["Name"]), None)
        return
    api.show(body, lambda: f"started {flow}/{body['Name']}: {tables.styled_status(str(body.get('Status', '')))}")


@executions.command("list")
@flow_option
@click.option("--status", type=click.Choice(STATUSES), help="Only executions in this status.")
@click.option("--prefix", help="Only executions whose name starts so.")
@_paging
@connected
def executions_list(api: Api, flow: str, status: str | None, prefix: str | None, limit: int | None, next_token: str | None, all_pages: bool) -> None:
    """List a flow's executions (oldest first)."""
    body = _pages(
        api, "ListExecutions", "Executions", all_pages, next_token, flow_name=flow, status=status, execution_name_prefix=prefix, limit=limit,
        metadata_only=None if api.as_json else True,  # the table shows no input, output or definition
    )  # fmt: skip
    api.show(body, lambda: tables.executions_table(body["Executions"]))
    if not api.as_json:
        _more(body)


@executions.command("describe")
@click.argument("name")
@flow_option
@connected
def executions_describe(api: Api, name: str, flow: str) -> None:
    """Show an execution: status, times, input, output (and error and cause when it failed)."""
    _show_execution(api, api("DescribeExecution", flow_name=flow, execution_name=name))


@executions.command("history")
@click.argument("name")
@flow_option
@click.option("--wide", is_flag=True, help="Details in full, not cut to a line (a waiting task's token, whole outputs).")
@connected
def executions_history(api: Api, name: str, flow: str, wide: bool) -> None:
    """Print an execution's events: time, type, state, short detail."""
    events = _events(api, flow, name)
    api.show({"Events": events}, lambda: tables.history(events, None if wide else tables.DETAIL_WIDTH))


@executions.command("stop")
@click.argument("name")
@flow_option
@click.option("--error", help="Error recorded with the stop.")
@click.option("--cause", help="Cause recorded with the stop.")
@connected
def executions_stop(api: Api, name: str, flow: str, error: str | None, cause: str | None) -> None:
    """Stop a running execution."""
    body = api("StopExecution", flow_name=flow, execution_name=name, error=error, cause=cause)
    status = str(body.get("Status", ""))
    api.show(body, lambda: f"stopped {flow}/{name}" if status in ENDED else f"stop requested for {flow}/{name} ({tables.styled_status(status)})")


@executions.command("redrive")
@click.argument("name")
@flow_option
@click.option("--wait", "wait_", is_flag=True, help="Then wait for its end (exit 3 if it does not succeed).")
@connected
def executions_redrive(api: Api, name: str, flow: str, wait_: bool) -> None:
    """Redrive a Failed, Stopped or TimedOut execution from where it failed (an OpenFnF extension)."""
    body = api.extension("RedriveExecution", FlowName=flow, ExecutionName=name)
    api.show(body, lambda: f"redriven {flow}/{name} (redrive {body.get('RedriveCount')}, {tables.styled_status(str(body.get('Status', '')))})")
    if wait_:
        _wait(api, flow, name, None)


@executions.command("wait")
@click.argument("name")
@flow_option
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (exit 4); default: wait as long as it runs.")
@connected
def executions_wait(api: Api, name: str, flow: str, timeout: float | None) -> None:
    """Long-poll until the execution ends; exit 0 if it Succeeded, 3 if it Failed, Stopped or TimedOut."""
    _wait(api, flow, name, timeout)


class Progress:
    """The `wait` progress line on stderr: rewritten in place on a terminal, a line per change otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.width = 0

    def update(self, status: str, seconds: float) -> None:
        """Show the status and the time waited so far."""
        if self.tty:
            text = f"waiting for {self.label}: {tables.styled_status(status)} ({seconds:.0f}s)"
            self.width = max(self.width, len(click.unstyle(text)))
            click.echo("\r" + text + " " * (self.width - len(click.unstyle(text))), err=True, nl=False, color=tables.colour_wanted())
        elif status != self.last:
            echo(f"waiting for {self.label}: {status} ({seconds:.0f}s)", err=True)
        self.last = status

    def done(self) -> None:
        """End the line."""
        if self.tty and self.width:
            click.echo("\r" + " " * self.width + "\r", err=True, nl=False)


def _wait(api: Api, flow: str, name: str, timeout: float | None) -> None:
    began = time.monotonic()
    progress = None if api.as_json else Progress(f"{flow}/{name}")
    first = True
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - began)
        poll = POLL_SECONDS if left is None else max(0, min(POLL_SECONDS, int(left + 0.999)))
        if first:  # the status at once, for the progress line
            poll, first = 0, False
        body = api("DescribeExecution", flow_name=flow, execution_name=name, wait_time_seconds=poll)
        status = str(body.get("Status", ""))
        if progress is not None:
            progress.update(status, time.monotonic() - began)
        if status in ENDED:
            break
        if timeout is not None and time.monotonic() - began >= timeout:
            if progress is not None:
                progress.done()
            _show_execution(api, body)
            click.echo(f"{flow}/{name} is still {status} after {timeout:g}s", err=True)
            sys.exit(EXIT_STILL_RUNNING)
    if progress is not None:
        progress.done()
    _show_execution(api, body)
    if status != "Succeeded":
        sys.exit(EXIT_NOT_SUCCEEDED)


# --------------------------------------------------------------------------- tasks


@click.group()
def tasks() -> None:
    """Tasks waiting for a callback: report them succeeded or failed."""


@tasks.command("report-succeeded")
@click.argument("token")
@click.option("--output", default="{}", show_default=True, help="The task's output, JSON.")
@connected
def tasks_report_succeeded(api: Api, token: str, output: str) -> None:
    """Report the task with this token as succeeded."""
    body = api("ReportTaskSucceeded", task_token=token, output=_json_arg(output, "--output"))
    api.show(body, lambda: f"reported succeeded (event {body.get('EventId', '-')})")


@tasks.command("report-failed")
@click.argument("token")
@click.option("--error", required=True, help="The error name (what the flow's retry/catch match).")
@click.option("--cause", default="", help="The cause.")
@connected
def tasks_report_failed(api: Api, token: str, error: str, cause: str) -> None:
    """Report the task with this token as failed."""
    body = api("ReportTaskFailed", task_token=token, error=error, cause=cause)
    api.show(body, lambda: f"reported failed (event {body.get('EventId', '-')})")
