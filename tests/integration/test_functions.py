"""Functions file, Python handlers called like FC's runtime, HTTP functions, and HTTP:Request tasks."""
from __future__ import annotations

import contextvars
import gc
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from openfnf.redisserver import free_port
from worker import functions as functions_module
from worker.functions import Binding, Caller, Functions, FunctionsError, Invocation, load_functions, parse_arn
from worker.httptask import http_request

OLD_ARN = "acs:fc:cn-hangzhou:123:services/demo/functions/{}"
NEW_ARN = "acs:fc:cn-hangzhou:123:functions/{}/LATEST"


def py(fn: str) -> Binding:
    return Binding(f"acs:fc:*:*:services/demo/functions/{fn}", python=f"tests.handlers:{fn}")


@pytest.mark.parametrize(
    "fn, expected",
    [
        ("json_text", {"book_flight": "success", "n": 4}),
        ("plain_text", "hello there"),
        ("a_list", [1, 2, 3]),
    ],
)
def test_return_values_are_parsed_like_fc(fn: str, expected: Any) -> None:
    out = Functions([py(fn)]).invoke(OLD_ARN.format(fn), {"n": 4}, 5)
    assert out.succeeded and out.result == expected


def test_handler_gets_event_bytes_and_an_fc_like_context() -> None:
    out = Functions([py("echo")]).invoke(OLD_ARN.format("echo"), {"k": [1, "x"]}, 5)
    assert out.result == {"event": {"k": [1, "x"]}, "function": "echo", "service": "demo"}


def test_the_exception_class_name_is_the_error() -> None:
    out = Functions([py("fails")]).invoke(OLD_ARN.format("fails"), {}, 5)
    assert (out.succeeded, out.error, out.cause) == (False, "BookFlightError", "no seats left")


def test_a_handler_outliving_the_timeout_is_task_timeout() -> None:
    out = Functions([py("slow")]).invoke(OLD_ARN.format("slow"), {"seconds": 3}, 0.2)
    assert (out.succeeded, out.error) == (False, "FnF.TaskTimeout")


def test_unknown_arn_and_unloadable_handler_fail_clearly() -> None:
    fns = Functions([py("echo"), Binding("acs:fc:*:*:services/demo/functions/broken", python="tests.handlers:nope")])
    missing = fns.invoke(OLD_ARN.format("other"), {}, 1)
    assert (missing.error, "no function in the functions file matches") == ("FnF.FunctionNotFound", missing.cause[:41])
    broken = fns.invoke(OLD_ARN.format("broken"), {}, 1)
    assert broken.error == "FnF.FunctionNotFound" and "cannot load handler" in broken.cause


def test_patterns_match_old_and_new_arn_forms() -> None:
    fns = Functions([Binding("acs:fc:*:*:functions/add/*", python="tests.handlers:add"), py("add")])
    assert fns.invoke(NEW_ARN.format("add"), {"a": 1, "b": 2}, 5).result == {"sum": 3}
    assert fns.invoke("acs:fc:::services/demo/functions/add", {"a": 2, "b": 2}, 5).result == {"sum": 4}
    assert parse_arn(NEW_ARN.format("f")).function == "f"
    assert parse_arn("acs:fc:::services/s/functions/f").service == "s"


def test_functions_file(tmp_path: Path) -> None:
    good = tmp_path / "functions.yaml"
    good.write_text('functions:\n  - arn: "acs:fc:*:*:services/x/functions/*"\n    http: "http://127.0.0.1:1/{function}"\n')
    assert load_functions(good) == [Binding("acs:fc:*:*:services/x/functions/*", http="http://127.0.0.1:1/{function}")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("functions:\n  - arn: x\n    python: a:b\n    http: http://c\n")
    with pytest.raises(FunctionsError, match="exactly one of"):
        load_functions(bad)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/invoke/boom"):
            self._reply(500, {"errorType": "InventoryError", "errorMessage": "out of stock"})
        elif self.path.startswith("/invoke/plain500"):
            self._reply(502, b"bad gateway")
        elif self.path.startswith("/invoke/"):
            self._reply(200, {"path": self.path, "event": json.loads(data or b"{}")})
        else:
            self._reply(200, {"method": "POST", "body": data.decode(), "ctype": self.headers.get("Content-Type")})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/slow"):
            import time

            time.sleep(2)
        if self.path.startswith("/missing"):
            self._reply(404, {"not": "found"}, {"X-Trace": "t1"})
            return
        self._reply(200, {"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")}, {"X-Trace": "t2"})


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_http_functions(http_server: str) -> None:
    fns = Functions([Binding("acs:fc:*:*:services/remote/functions/*", http=http_server + "/invoke/{function}")])
    ok = fns.invoke("acs:fc:::services/remote/functions/greet", {"who": "ann"}, 5)
    assert ok.result == {"path": "/invoke/greet", "event": {"who": "ann"}}
    boom = fns.invoke("acs:fc:::services/remote/functions/boom", {}, 5)
    assert (boom.error, boom.cause) == ("InventoryError", "out of stock")
    plain = fns.invoke("acs:fc:::services/remote/functions/plain500", {}, 5)
    assert plain.error == "FC.HTTPError" and "502" in plain.cause
    down = Functions([Binding("*", http=f"http://127.0.0.1:{free_port()}/x")]).invoke("acs:fc:::services/a/functions/b", {}, 2)
    assert down.error == "FC.HTTPError" and "cannot reach" in down.cause


def test_http_request_task(http_server: str) -> None:
    got = http_request({"method": "GET", "url": http_server + "/things", "query": {"a": 1}, "headers": {"Authorization": "Bearer x"}}, 5)
    assert got.succeeded
    assert got.result["StatusCode"] == 200 and got.result["Headers"]["X-Trace"] == "t2"
    assert got.result["Body"] == {"method": "GET", "path": "/things?a=1", "auth": "Bearer x"}
    posted = http_request({"method": "POST", "url": http_server + "/p", "body": {"k": "v"}}, 5).result["Body"]
    assert posted == {"method": "POST", "body": '{"k": "v"}', "ctype": "application/json"}
    missing = http_request({"url": http_server + "/missing"}, 5)
    assert missing.succeeded and missing.result["StatusCode"] == 404  # an answer is a result; flows branch on it
    slow = http_request({"url": http_server + "/slow"}, 0.3)
    assert slow.error == "HTTP.Timeout"
    refused = http_request({"url": f"http://127.0.0.1:{free_port()}/"}, 2)
    assert refused.error == "HTTP.ConnectionError"
    assert http_request({"url": "ftp://nope"}, 1).error == "HTTP.InvalidParameters"


# Handlers bound by the tests below (this module, imported by name as the functions file would).
HERE = "tests.integration.test_functions"
_release = threading.Event()  # lets `stuck` return
_seen_threads: list[threading.Thread] = []  # the threads `stuck` and `where` ran on
_var: contextvars.ContextVar[str] = contextvars.ContextVar("test_functions_var", default="unset")


def stuck(event: bytes, context: Any) -> dict[str, Any]:
    """Does not return until the test says so (a handler that hangs), then answers late."""
    _seen_threads.append(threading.current_thread())
    _release.wait(30)
    return {"late": json.loads(event)}


def where(event: bytes, context: Any) -> dict[str, Any]:
    """The event back, and which thread ran the call."""
    _seen_threads.append(threading.current_thread())
    return {"event": json.loads(event), "thread": threading.current_thread().name}


def whole_context(event: bytes, context: Any) -> dict[str, Any]:
    """Every attribute a handler's context has, nested objects as dicts, and their class names."""
    out: dict[str, Any] = {}
    for name, value in vars(context).items():
        if name in ("service", "function", "credentials"):
            out[name] = {"class": type(value).__name__, **{k: getattr(value, k) for k in dir(value) if not k.startswith("_")}}
        else:
            out[name] = value
    return out


def sets_a_context_var(event: bytes, context: Any) -> dict[str, Any]:
    """What a context variable held when the call began; then sets it."""
    before = _var.get()
    _var.set(context.request_id)
    return {"before": before}


def raises_system_exit(event: bytes, context: Any) -> None:
    """A BaseException that is not an Exception."""
    raise SystemExit("handler called exit")


def meets(event: bytes, context: Any) -> dict[str, Any]:
    """Returns only once `parties` calls are running at the same time (a barrier; fails after 10 s)."""
    data = json.loads(event)
    _barriers[data["barrier"]].wait(10)
    return {"n": data["n"], "request_id": context.request_id}


_barriers: dict[str, threading.Barrier] = {}


def here(fn: str) -> Binding:
    return Binding(f"acs:fc:*:*:services/demo/functions/{fn}", python=f"{HERE}:{fn}")


@pytest.fixture
def released() -> Iterator[None]:
    """Lets any `stuck` call return when the test ends."""
    _release.clear()
    _seen_threads.clear()
    try:
        yield
    finally:
        _release.set()


def test_a_hung_handler_times_out_and_later_calls_still_run(released: None) -> None:
    fns = Functions([here("stuck"), here("where")])
    hung = fns.invoke(OLD_ARN.format("stuck"), {"n": 1}, 0.2)
    assert (hung.error, hung.cause) == ("FnF.TaskTimeout", "function stuck did not return within 0.2 s")
    # the next calls on this thread are not queued behind the one that never returned
    for n in range(3):
        out = fns.invoke(OLD_ARN.format("where"), {"n": n}, 5)
        assert out.succeeded and out.result == {"event": {"n": n}, "thread": "fn-where"}
    abandoned, *later = _seen_threads
    assert all(t is not abandoned for t in later)
    # when the hung call finally returns, its answer goes nowhere and its thread ends
    _release.set()
    abandoned.join(5)
    assert not abandoned.is_alive()
    assert fns.invoke(OLD_ARN.format("where"), {"n": 9}, 5).result == {"event": {"n": 9}, "thread": "fn-where"}


def test_calls_run_on_a_thread_of_their_own_kept_between_calls(released: None) -> None:
    fns = Functions([here("where")])
    for n in range(3):
        fns.invoke(OLD_ARN.format("where"), {"n": n}, 5)
    first, *rest = _seen_threads
    assert first is not threading.current_thread() and first.daemon
    assert all(t is first for t in rest)


def test_the_call_thread_ends_with_its_calling_thread(released: None) -> None:
    fns = Functions([here("where")])
    caller = threading.Thread(target=lambda: fns.invoke(OLD_ARN.format("where"), {}, 5))
    caller.start()
    caller.join(5)
    gc.collect()
    (call_thread,) = _seen_threads
    call_thread.join(5)
    assert not call_thread.is_alive()


def test_the_context_is_fc_like_with_openfnf_additions() -> None:
    caller = Caller("AK", "SK", "127.0.0.1:8000")
    fns = Functions([Binding("acs:fc:*:*:services/demo/functions/*", python=f"{HERE}:whole_context")], caller)
    invocation = Invocation("Book", "12/1", "flow-1", "exec-1", "tok")
    first = fns.invoke(OLD_ARN.format("whole_context"), {}, 7, invocation).result
    second = fns.invoke(OLD_ARN.format("whole_context"), {}, None).result
    request_id = first.pop("request_id")
    assert str(uuid.UUID(request_id)) == request_id and uuid.UUID(request_id).version == 4
    assert second.pop("request_id") != request_id
    assert first == {
        "resource": OLD_ARN.format("whole_context"), "step": "Book", "task_id": "12/1", "flow_id": "flow-1",
        "execution_name": "exec-1", "task_token": "tok", "region": "cn-hangzhou", "account_id": "123",
        "endpoint": "127.0.0.1:8000",
        "service": {"class": "Service", "name": "demo"},
        "function": {"class": "Function", "name": "whole_context", "timeout": 7, "handler": ""},
        "credentials": {"class": "Credentials", "access_key_id": "AK", "access_key_secret": "SK", "security_token": ""},
    }  # fmt: skip
    # outside an execution the additions are empty; no task timeout is FC's default of 60 s
    assert (second["step"], second["task_id"], second["task_token"], second["function"]["timeout"]) == ("", "", "", 60.0)
    new_form = fns.invoke(NEW_ARN.format("whole_context"), {}, 5)
    assert new_form.succeeded is False  # the binding above only names the old form
    fns_new = Functions([Binding("acs:fc:*:*:functions/*", python=f"{HERE}:whole_context")])
    got = fns_new.invoke(NEW_ARN.format("f1"), {}, 5).result
    assert (got["service"]["name"], got["function"]["name"], got["credentials"]["access_key_id"], got["endpoint"]) == ("", "f1", "", "")


def test_each_call_starts_with_a_fresh_contextvars_context() -> None:
    fns = Functions([here("sets_a_context_var")])
    for _ in range(3):
        assert fns.invoke(OLD_ARN.format("sets_a_context_var"), {}, 5).result == {"before": "unset"}


def test_a_base_exception_is_the_error_and_the_call_thread_survives_it(released: None) -> None:
    fns = Functions([here("raises_system_exit"), here("where")])
    out = fns.invoke(OLD_ARN.format("raises_system_exit"), {}, 5)
    assert (out.succeeded, out.error, out.cause) == (False, "SystemExit", "handler called exit")
    assert fns.invoke(OLD_ARN.format("where"), {"n": 1}, 5).result == {"event": {"n": 1}, "thread": "fn-where"}


def test_calls_from_several_threads_run_at_once_and_get_their_own_answers() -> None:
    # one Functions shared by calling threads, as Celery's threads pool shares the process's runner
    fns = Functions([here("meets")])
    threads, rounds = 4, 25
    results: dict[int, list[Any]] = {i: [] for i in range(threads)}

    def calls(i: int) -> None:
        for r in range(rounds):
            out = fns.invoke(OLD_ARN.format("meets"), {"barrier": f"round-{r}", "n": i * 1000 + r}, 15)
            results[i].append(out.result if out.succeeded else (out.error, out.cause))

    # every round's calls wait for each other: they only all return if they run at the same time
    _barriers.update({f"round-{r}": threading.Barrier(threads) for r in range(rounds)})
    callers = [threading.Thread(target=calls, args=(i,)) for i in range(threads)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(60)
    for i in range(threads):
        assert [res["n"] for res in results[i]] == [i * 1000 + r for r in range(rounds)]
    request_ids = [res["request_id"] for i in range(threads) for res in results[i]]
    assert len(set(request_ids)) == threads * rounds


def test_calls_work_in_a_child_forked_after_a_call(released: None) -> None:
    fns = Functions([here("where")])
    assert fns.invoke(OLD_ARN.format("where"), {"n": 0}, 5).succeeded  # this process has a call thread now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its parent's call thread does not exist here
        try:
            request_id = functions_module._request_id()
            out = fns.invoke(OLD_ARN.format("where"), {"n": 1}, 2)
            os.write(write_end, json.dumps([out.succeeded, out.result, out.error, request_id]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = json.loads(pipe.read() or b"null")
    os.waitpid(pid, 0)
    assert answer[:3] == [True, {"event": {"n": 1}, "thread": "fn-where"}, ""]
    assert answer[3] != functions_module._request_id()  # request ids do not repeat the parent's after a fork


def test_resources_resolve_to_the_first_matching_binding_however_many_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions_module, "_RESOLVED_MAX", 2)  # what is remembered is forgotten often
    fns = Functions([Binding("acs:fc:*:*:services/demo/functions/add", python="tests.handlers:add"), here("where")])
    for n in range(3):  # each round's unbound resources fill what is remembered before the bound ones come
        assert fns.invoke(NEW_ARN.format(f"f{n}"), {}, 5).error == "FnF.FunctionNotFound"
        assert fns.binding(f"ECS:Describe{n}") is None
        assert fns.invoke(OLD_ARN.format("add"), {"a": n, "b": 1}, 5).result == {"sum": n + 1}
        assert fns.invoke(OLD_ARN.format("where"), {"n": n}, 5).result == {"event": {"n": n}, "thread": "fn-where"}
        assert fns.binding(OLD_ARN.format("add")) is fns.bindings[0] and fns.binding(OLD_ARN.format("where")) is fns.bindings[1]
