"""Functions file, Python handlers called like FC's runtime, HTTP functions, and HTTP:Request tasks."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from openfnf.redisserver import free_port
from worker.functions import Binding, Functions, FunctionsError, load_functions, parse_arn
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
