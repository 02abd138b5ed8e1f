"""The functions file: task resources mapped to Python handlers or HTTP endpoints, and invoking them.

```yaml
functions:
  - arn: "acs:fc:*:*:services/demo/functions/hello"     # glob; old and new ARN forms both work
    python: "myapp.handlers:hello"                      # handler(event_bytes, context), like FC's runtime
  - arn: "acs:fc:*:*:services/billing/functions/*"
    http: "http://billing.internal:9000/invoke/{function}"   # POST the event, JSON back
  - arn: "acs:mns:*:*:/topics/*"                        # any other resource too (an ARN or an
    python: "myapp.mocks:publish"                       # Action such as ECS:DescribeInstances)
```

The `arn` glob is matched against the task's resource, whatever its kind (worker/activities.py
decides which resources come here). Handlers get FC's context plus OpenFnF's additions (Invocation).
"""
from __future__ import annotations

import importlib
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from common.interpreter.data import parse_if_json as parse_result  # one rule for what a call returned

from worker.outcomes import Outcome

TASK_TIMEOUT = "FnF.TaskTimeout"
UNKNOWN_FUNCTION = "FnF.FunctionNotFound"
HTTP_FUNCTION_ERROR = "FC.HTTPError"
DEFAULT_TIMEOUT_S = 60.0  # Function Compute's default function timeout when the task sets none

_OLD = re.compile(r"^acs:fc:(?P<region>[^:]*):(?P<account>[^:]*):services/(?P<service>[^/]+)/functions/(?P<function>[^/]+)$")
_NEW = re.compile(r"^acs:fc:(?P<region>[^:]*):(?P<account>[^:]*):functions/(?P<function>[^/]+)(?:/(?P<qualifier>[^/]+))?$")


@dataclass(frozen=True)
class FunctionRef:
    """What an ARN names."""

    arn: str
    service: str
    function: str
    region: str
    account: str


def parse_arn(arn: str) -> FunctionRef | None:
    """The parts of an FC ARN (old `services/S/functions/F` or new `functions/F/LATEST` form)."""
    m = _OLD.match(arn) or _NEW.match(arn)
    if m is None:
        return None
    parts = m.groupdict()
    return FunctionRef(arn, parts.get("service") or "", parts["function"], parts["region"], parts["account"])


def resource_ref(resource: str) -> FunctionRef:
    """What a handler's context says about any resource: an FC ARN's parts, else region and account of
    an `acs:` ARN and its last path segment as the function name (an Action such as `HTTP:Request` as is)."""
    ref = parse_arn(resource)
    if ref is not None:
        return ref
    parts = resource.split(":", 4)
    region, account = (parts[2], parts[3]) if len(parts) == 5 and parts[0] == "acs" else ("", "")
    return FunctionRef(resource, "", resource.rstrip("/").rsplit("/", 1)[-1], region, account)


@dataclass(frozen=True)
class Binding:
    """One entry of the functions file."""

    pattern: str
    python: str | None = None
    http: str | None = None


class FunctionsError(ValueError):
    """A functions file that cannot be used."""


def load_functions(path: Path | None) -> list[Binding]:
    """Read the functions file (no file: no functions)."""
    if path is None:
        return []
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = doc.get("functions") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FunctionsError(f"{path}: expected a mapping with a `functions` list")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("arn"), str):
            raise FunctionsError(f"{path}: functions[{i}] needs an `arn` pattern")
        if bool(entry.get("python")) == bool(entry.get("http")):
            raise FunctionsError(f"{path}: functions[{i}] needs exactly one of `python` or `http`")
        out.append(Binding(entry["arn"], entry.get("python"), entry.get("http")))
    return out


@dataclass(frozen=True)
class Invocation:
    """The task behind a call (OpenFnF's additions to the handler context; empty outside an execution)."""

    step: str = ""  # the Task's state / step name
    task_id: str = ""  # the activity id: "<StepEntered EventId>", "<that>/<attempt>" for a retry
    flow_id: str = ""  # CreateFlow's Id of the execution's flow
    execution_name: str = ""
    task_token: str = ""  # in the callback modes the token to report to, else ""


class Context:
    """What a handler gets as `context`, shaped like Function Compute's Python runtime context.

    OpenFnF's additions: `endpoint`, `resource` (the task's resource the binding matched), and the
    Invocation's `step`, `task_id`, `flow_id`, `execution_name`, `task_token`.
    """

    def __init__(
        self, ref: FunctionRef, timeout_s: float, request_id: str, caller: Caller | None = None, invocation: Invocation | None = None
    ) -> None:
        caller = caller or Caller()
        invocation = invocation or Invocation()
        self.resource = ref.arn
        self.step = invocation.step
        self.task_id = invocation.task_id
        self.flow_id = invocation.flow_id
        self.execution_name = invocation.execution_name
        self.task_token = invocation.task_token
        self.request_id = request_id
        self.region = ref.region
        self.account_id = ref.account
        self.endpoint = caller.endpoint  # OpenFnF's addition: where to call the API back
        self.service = type("Service", (), {"name": ref.service})()
        self.function = type("Function", (), {"name": ref.function, "timeout": timeout_s, "handler": ""})()
        self.credentials = type(
            "Credentials", (), {"access_key_id": caller.key_id, "access_key_secret": caller.secret, "security_token": ""}
        )()


@dataclass(frozen=True)
class Caller:
    """The credentials and endpoint functions get to call the API back (settings functions_*)."""

    key_id: str = ""
    secret: str = ""
    endpoint: str = ""


class Functions:
    """Resolves task resources (FC ARNs first of all) through the bindings and invokes the target."""

    def __init__(self, bindings: list[Binding], caller: Caller | None = None) -> None:
        self.bindings = bindings
        self.caller = caller or Caller()
        self._handlers: dict[str, Callable[..., Any]] = {}

    def binding(self, resource: str) -> Binding | None:
        """The first binding whose pattern matches the resource (an ARN or an Action)."""
        return next((b for b in self.bindings if fnmatchcase(resource, b.pattern)), None)

    def invoke(self, arn: str, event: Any, timeout_s: float | None, invocation: Invocation | None = None) -> Outcome:
        """Call the function bound to `arn` (any resource) with `event`; never raises for the function's own errors."""
        ref = resource_ref(arn)
        binding = self.binding(arn)
        if binding is None:
            return Outcome.failed(UNKNOWN_FUNCTION, f"no function in the functions file matches {arn}")
        limit = timeout_s or DEFAULT_TIMEOUT_S
        payload = json.dumps(event).encode()
        if binding.python:
            return self._python(binding.python, ref, payload, limit, invocation)
        assert binding.http is not None
        return self._http(binding.http, ref, payload, limit)

    def _handler(self, spec: str) -> Callable[..., Any]:
        handler = self._handlers.get(spec)
        if handler is None:
            module_name, _, attr = spec.partition(":")
            handler = getattr(importlib.import_module(module_name), attr or "handler")
            self._handlers[spec] = handler
        return handler

    def _python(self, spec: str, ref: FunctionRef, payload: bytes, limit: float, invocation: Invocation | None) -> Outcome:
        try:
            handler = self._handler(spec)
        except (ImportError, AttributeError, ValueError) as exc:
            return Outcome.failed(UNKNOWN_FUNCTION, f"cannot load handler {spec}: {exc}")
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = handler(payload, Context(ref, limit, str(uuid.uuid4()), self.caller, invocation))
            except BaseException as exc:  # the function's error is the task's error  # noqa: BLE001
                box["error"] = exc

        # A thread lets the task time out without killing the worker; a handler that never returns
        # keeps its thread, and its late result is ignored (docs/compatibility.md).
        thread = threading.Thread(target=call, name=f"fn-{ref.function}", daemon=True)
        thread.start()
        thread.join(limit)
        if thread.is_alive():
            return Outcome.failed(TASK_TIMEOUT, f"function {ref.function} did not return within {limit:g} s")
        if "error" in box:
            exc = box["error"]
            return Outcome.failed(type(exc).__name__, str(exc))
        return Outcome.ok(parse_result(box.get("value")))

    def _http(self, template: str, ref: FunctionRef, payload: bytes, limit: float) -> Outcome:
        url = template.replace("{function}", ref.function).replace("{service}", ref.service)
        request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=limit) as resp:  # noqa: S310 - URLs come from the operator's file
                return Outcome.ok(parse_result(resp.read()))
        except urllib.error.HTTPError as exc:
            body = parse_result(exc.read())
            if isinstance(body, dict) and body.get("errorType"):
                return Outcome.failed(str(body["errorType"]), str(body.get("errorMessage", "")))
            return Outcome.failed(HTTP_FUNCTION_ERROR, f"{url} answered {exc.code}: {str(body)[:500]}")
        except TimeoutError:
            return Outcome.failed(TASK_TIMEOUT, f"{url} did not answer within {limit:g} s")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                return Outcome.failed(TASK_TIMEOUT, f"{url} did not answer within {limit:g} s")
            return Outcome.failed(HTTP_FUNCTION_ERROR, f"cannot reach {url}: {reason}")

