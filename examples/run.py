"""Run one example of this directory on a running `openfnf dev --functions examples/functions.yaml`.

In a second terminal, after pasting the `export OPENFNF_...` line `openfnf dev` prints:

    .venv/bin/python examples/run.py callback      # input {"order": "o-42"}
    .venv/bin/python examples/run.py parent        # input {"items": ["b", "a"]}
    .venv/bin/python examples/run.py child         # input {"items": ["b", "a"]}
    .venv/bin/python examples/run.py parent '{"items": ["x"]}'   # another input

It creates (or updates) the flows the example needs, named `example_<file>` (`parent` runs
`example_child` and `example_callback_child`), starts one execution, waits for its end and prints
its status and output (or its error and cause). The exit status is 0 if it succeeded.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# example -> (the flow files it needs, the flow it starts last; the input it runs with by default)
EXAMPLES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "callback": (["callback"], {"order": "o-42"}),
    "child": (["child"], {"items": ["b", "a"]}),
    "parent": (["child", "callback_child", "parent"], {"items": ["b", "a"]}),
}


def client() -> Any:
    """The official SDK's client, configured from OPENFNF_ENDPOINT / _ACCESS_KEY_ID / _ACCESS_KEY_SECRET."""
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    missing = [v for v in ("OPENFNF_ACCESS_KEY_ID", "OPENFNF_ACCESS_KEY_SECRET") if not os.environ.get(v)]
    if missing:
        sys.exit(f"set {' and '.join(missing)}: paste the `export OPENFNF_...` line `openfnf dev` prints")
    return Client(Config(
        access_key_id=os.environ["OPENFNF_ACCESS_KEY_ID"],
        access_key_secret=os.environ["OPENFNF_ACCESS_KEY_SECRET"],
        endpoint=os.environ.get("OPENFNF_ENDPOINT", "127.0.0.1:8080"),
        protocol="http",
        read_timeout=70000,  # ms; above the longest long-poll
    ))  # fmt: skip


def put_flow(sdk: Any, name: str, definition: str) -> None:
    """Create the flow, or update it to this definition if it exists."""
    from alibabacloud_fnf20190315 import models

    try:
        sdk.create_flow(models.CreateFlowRequest(name=name, definition=definition, description=f"examples/{name}", type="FDL"))
    except Exception as err:
        if getattr(err, "code", "") != "FlowAlreadyExists":
            raise
        sdk.update_flow(models.UpdateFlowRequest(name=name, definition=definition))


def run(sdk: Any, example: str, data: dict[str, Any], wait_seconds: float = 300) -> tuple[str, str]:
    """Put the example's flows, run it with `data`; its final (status, output or `error: cause`)."""
    from alibabacloud_fnf20190315 import models

    files, _ = EXAMPLES[example]
    for stem in files:
        put_flow(sdk, f"example_{stem}", (HERE / f"{stem}.yaml").read_text(encoding="utf-8"))
    flow = f"example_{files[-1]}"
    name = sdk.start_execution(models.StartExecutionRequest(flow_name=flow, input=json.dumps(data))).body.name
    deadline = time.monotonic() + wait_seconds
    while True:
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=60)).body
        if body.status != "Running" or time.monotonic() > deadline:
            break
    if body.status == "Succeeded":
        return body.status, body.output
    events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name=flow, execution_name=name)).body.events
    detail = events[-1].event_detail if events else ""
    return body.status, detail or ""


def main(argv: list[str]) -> int:
    """`run.py EXAMPLE [INPUT_JSON]`."""
    if not argv or argv[0] not in EXAMPLES:
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(argv[1]) if len(argv) > 1 else EXAMPLES[argv[0]][1]
    status, output = run(client(), argv[0], data)
    print(status)
    print(output)
    return 0 if status == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
