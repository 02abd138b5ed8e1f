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

import contextvars
import importlib
import json
import os
import queue
import re
import threading
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from random import getrandbits
from typing import Any

import yaml

from common import jsonlimits, tracing
from worker.account_keys import AccountKeys
from worker.outcomes import INVALID_RESULT, Outcome

TASK_TIMEOUT = "FnF.TaskTimeout"
UNKNOWN_FUNCTION = "FnF.FunctionNotFound"
HTTP_FUNCTION_ERROR = "FC.HTTPError"
DEFAULT_TIMEOUT_S = 60.0  # Function Compute's default function timeout when the task sets none


def parse_result(value: Any) -> Any:
    """What a call returned, as data: JSON text is parsed (FC functions often return strings), other text stays text.

    JsonRefused for JSON text holding NaN or Infinity or nested past jsonlimits.HARD_MAX_DEPTH (the
    runner checks OPENFNF_MAX_JSON_DEPTH on every result: ActivityRunner.execute).
    """
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return jsonlimits.loads(value, jsonlimits.HARD_MAX_DEPTH)
        except ValueError:
            return value
    return value

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
    account: str = ""  # the execution's account: context.credentials hold a key of it (worker/account_keys.py)


class Context:
    """What a handler gets as `context`, shaped like Function Compute's Python runtime context.

    OpenFnF's additions: `endpoint`, `resource` (the task's resource the binding matched), and the
    Invocation's `step`, `task_id`, `flow_id`, `execution_name`, `task_token`.
    """

    class Service:
        """`context.service`: FC's service (empty for the new ARN form and for other resources)."""

        def __init__(self, name: str) -> None:
            self.name = name

    class Function:
        """`context.function`: the function's name and the call's time limit in seconds."""

        def __init__(self, name: str, timeout: float) -> None:
            self.name = name
            self.timeout = timeout
            self.handler = ""

    class Credentials:
        """`context.credentials`: what the function may call the API back with: a key of the execution's
        account from the credentials file, else settings functions_* (worker/account_keys.py)."""

        def __init__(self, access_key_id: str, access_key_secret: str) -> None:
            self.access_key_id = access_key_id
            self.access_key_secret = access_key_secret
            self.security_token = ""

    def __init__(
        self, ref: FunctionRef, timeout_s: float, request_id: str, caller: Caller | None = None, invocation: Invocation | None = None
    ) -> None:
        caller = caller or _NO_CALLER
        invocation = invocation or _NO_INVOCATION
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
        self.service = Context.Service(ref.service)
        self.function = Context.Function(ref.function, timeout_s)
        self.credentials = Context.Credentials(caller.key_id, caller.secret)


@dataclass(frozen=True)
class Caller:
    """The credentials and endpoint functions get to call the API back (settings functions_*)."""

    key_id: str = ""
    secret: str = ""
    endpoint: str = ""


_NO_CALLER = Caller()
_NO_INVOCATION = Invocation()


# Python handlers run on call threads, not on the thread that asks for the call, so a call can time
# out without killing the worker. Starting a thread per call was most of a call's CPU (~90 of ~120 us), so
# each calling thread (one with the solo pool, one per slot with --pool threads) has its
# own call thread, kept between calls: calls from different calling threads never share one, and
# one calling thread makes one call at a time. A call that outlives its limit abandons its call
# thread (it ends once the handler returns; its late result is ignored, docs/compatibility.md) and
# the calling thread's next call gets a fresh one.
_call_threads = threading.local()  # .current: this calling thread's _CallThread
_fork_generation = 0  # a call thread made before a fork does not exist in the child


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _serve(jobs: queue.SimpleQueue[list[Any] | None], done: threading.Lock) -> None:
    """A call thread's loop: run each job `[name, handler, event, context, ok, value]`, fill in ok and
    value (the return value, or the exception raised), release `done`; a None job ends the thread."""
    me = threading.current_thread()
    while True:
        job = jobs.get()
        if job is None:
            return
        if me.name != job[0]:
            me.name = job[0]  # fn-<function>, as a thread of its own was named
        try:
            # a fresh context per call, as a new thread had: what one call sets is not seen by the next
            job[5] = contextvars.Context().run(job[1], job[2], job[3])
            job[4] = True
        except BaseException as exc:  # the function's error is the task's error  # noqa: BLE001
            job[5] = exc
        job = None  # hold nothing of a call while idle
        done.release()


class _CallThread:
    """A thread that runs one calling thread's handler calls, one at a time."""

    __slots__ = ("__weakref__", "done", "generation", "jobs", "thread")

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self.done = threading.Lock()  # held while a call runs (and while idle); the call thread releases it
        self.done.acquire()
        self.generation = _fork_generation
        self.thread = threading.Thread(target=_serve, args=(self.jobs, self.done), name="fn-call", daemon=True)
        self.thread.start()
        # the thread refers to the queue, not to this object: when its calling thread ends (and with
        # it the thread-local that holds this), the call thread is told to end too
        weakref.finalize(self, self.jobs.put, None)

    def call(self, name: str, handler: Callable[..., Any], event: bytes, context: Context, limit: float) -> list[Any] | None:
        """Run handler(event, context) on the call thread; the finished job, or None when it did not
        return within `limit` seconds (this call thread is then abandoned and must not be used again)."""
        job: list[Any] = [name, handler, event, context, False, None]
        self.jobs.put(job)
        try:
            finished = self.done.acquire(timeout=min(max(limit, 0.0), threading.TIMEOUT_MAX))
        except BaseException:  # interrupted while waiting (a signal): the call may still be running
            self.jobs.put(None)
            raise
        if finished:
            return job
        self.jobs.put(None)  # it ends once the handler returns
        return None


def _request_id() -> str:
    """A random (version 4) UUID as text, as FC's request ids are, without uuid4()'s system call (a
    request id needs to be unique, not secret; random reseeds itself after a fork)."""
    return str(uuid.UUID(int=getrandbits(128), version=4))


def _call_thread() -> _CallThread:
    """The calling thread's call thread (a new one after a timeout, and in a forked child)."""
    current: _CallThread | None = getattr(_call_threads, "current", None)
    if current is None or current.generation != _fork_generation:
        current = _call_threads.current = _CallThread()
    return current


_RESOLVED_MAX = 4096  # resources whose resolution a Functions remembers


class Functions:
    """Resolves task resources (FC ARNs first of all) through the bindings and invokes the target."""

    def __init__(self, bindings: list[Binding], caller: Caller | None = None, account_keys: AccountKeys | None = None) -> None:
        self.bindings = bindings  # not changed afterwards: what a resource resolves to is remembered
        self.caller = caller or Caller()  # for an execution whose account has no key in account_keys
        self.account_keys = account_keys
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._resolved: dict[str, tuple[Binding | None, FunctionRef]] = {}  # resource: its binding and parts

    def _resolve(self, resource: str) -> tuple[Binding | None, FunctionRef]:
        resolved = self._resolved.get(resource)
        if resolved is None:
            if len(self._resolved) >= _RESOLVED_MAX:  # a flow's resources are few; this only bounds odd cases
                self._resolved.clear()
            binding = next((b for b in self.bindings if fnmatchcase(resource, b.pattern)), None)
            resolved = self._resolved[resource] = (binding, resource_ref(resource))
        return resolved

    def binding(self, resource: str) -> Binding | None:
        """The first binding whose pattern matches the resource (an ARN or an Action)."""
        return self._resolve(resource)[0]

    def invoke(self, arn: str, event: Any, timeout_s: float | None, invocation: Invocation | None = None) -> Outcome:
        """Call the function bound to `arn` (any resource) with `event`; never raises for the function's own errors."""
        binding, ref = self._resolve(arn)
        if binding is None:
            return Outcome.failed(UNKNOWN_FUNCTION, f"no function in the functions file matches {arn}")
        limit = timeout_s or DEFAULT_TIMEOUT_S
        payload = json.dumps(event).encode()
        try:
            if binding.python:
                return self._python(binding.python, ref, payload, limit, invocation)
            assert binding.http is not None
            return self._http(binding.http, ref, payload, limit)
        except jsonlimits.JsonRefused as exc:
            return Outcome.failed(INVALID_RESULT, f"the result of function {ref.function} {exc}")

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
        runner = _call_thread()
        context = Context(ref, limit, _request_id(), self._caller_for(invocation), invocation)
        try:
            job = runner.call(f"fn-{ref.function}", handler, payload, context, limit)
        except BaseException:
            _call_threads.current = None
            raise
        if job is None:
            _call_threads.current = None  # the handler keeps that thread; the next call gets a new one
            return Outcome.failed(TASK_TIMEOUT, f"function {ref.function} did not return within {limit:g} s")
        if not job[4]:
            raised = job[5]
            return Outcome.failed(type(raised).__name__, str(raised))
        return Outcome.ok(parse_result(job[5]))

    def _caller_for(self, invocation: Invocation | None) -> Caller:
        """The credentials a call for this invocation gets: a key of its execution's account if one is known."""
        if invocation is None or self.account_keys is None:
            return self.caller
        found = self.account_keys.key_of(invocation.account)
        return self.caller if found is None else Caller(found[0], found[1], self.caller.endpoint)

    def _http(self, template: str, ref: FunctionRef, payload: bytes, limit: float) -> Outcome:
        url = template.replace("{function}", ref.function).replace("{service}", ref.service)
        headers = {"Content-Type": "application/json"}
        tracing.inject(headers)  # traceparent of the activity's span, when tracing is on
        request = urllib.request.Request(url, data=payload, method="POST", headers=headers)
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

