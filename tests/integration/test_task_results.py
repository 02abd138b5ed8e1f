"""A function or HTTP-task result that is not JSON the service takes fails the task (FnF.InvalidTaskResult), never the worker.

Too deep (OPENFNF_MAX_JSON_DEPTH), NaN or Infinity (as a Python value or as JSON text), a value JSON
cannot hold (a set): ActivityRunner.execute answers ActivityFailed with that error, which Retry
and Catch see like any task error.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from common.settings import Settings
from worker.activities import ActivityRunner
from worker.functions import Binding, Functions
from worker.httptask import http_request
from worker.outcomes import INVALID_RESULT

ARN = "acs:fc:cn-hangzhou:123:services/demo/functions/{}"


@pytest.fixture
def runner(r: Any) -> ActivityRunner:
    bindings = [Binding(f"acs:fc:*:*:services/demo/functions/{fn}", python=f"tests.handlers:{fn}") for fn in ("nested", "not_json")]
    return ActivityRunner(r, Settings(_env_file=None), Functions(bindings), lambda tag: None)


def command(fn: str, event: dict[str, Any]) -> dict[str, Any]:
    return {"id": "3", "kind": "fc", "resource": ARN.format(fn), "input": event, "mode": "RequestComplete"}


@pytest.mark.parametrize("as_text", [False, True])
def test_a_result_at_the_limit_is_kept_one_deeper_fails(runner: ActivityRunner, as_text: bool) -> None:
    ok = runner.execute("flow|e", command("nested", {"depth": 63, "as_text": as_text}))  # 63 lists around the 1: 63 levels
    assert ok.succeeded and json.dumps(ok.result).count("[") == 63
    ok = runner.execute("flow|e", command("nested", {"depth": 64, "as_text": as_text}))
    assert ok.succeeded
    for depth in (65, 3000):
        bad = runner.execute("flow|e", command("nested", {"depth": depth, "as_text": as_text}))
        assert (bad.succeeded, bad.error) == (False, INVALID_RESULT), bad
        # JSON text is read up to 500 levels (jsonlimits.HARD_MAX_DEPTH), then checked against the setting.
        assert "nests deeper than " + ("500" if as_text and depth > 500 else "64") + " levels" in bad.cause, bad


@pytest.mark.parametrize("kind", ["nan", "nan_text", "inf", "set"])
def test_nan_infinity_and_sets_fail_the_task(runner: ActivityRunner, kind: str) -> None:
    bad = runner.execute("flow|e", command("not_json", {"kind": kind}))
    assert (bad.succeeded, bad.error) == (False, INVALID_RESULT), bad
    event = runner.outcome_event("flow|e", command("not_json", {"kind": kind}), bad)
    assert event is not None and event["t"] == "ActivityFailed" and event["error"] == INVALID_RESULT


@pytest.fixture
def http_server() -> Iterator[str]:
    """A server answering GET /deep with JSON nested 3000 levels, /nan with NaN, both as 200 and as 500."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path, _, status = self.path.partition("?status=")
            body = ("[" * 3000 + "]" * 3000) if path.startswith("/deep") else '{"x": NaN}'
            self.send_response(int(status or 200))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("path", ["/deep", "/nan", "/deep?status=500", "/nan?status=500"])
def test_http_answers_that_are_not_json_fail_the_task(http_server: str, path: str) -> None:
    out = http_request({"url": http_server + path}, 10)
    assert (out.succeeded, out.error) == (False, INVALID_RESULT), out
    fns = Functions([Binding("acs:fc:*:*:services/web/functions/*", http=http_server + path)])
    out = fns.invoke("acs:fc:cn-hangzhou:123:services/web/functions/f", {}, 10)
    assert (out.succeeded, out.error) == (False, INVALID_RESULT), out
