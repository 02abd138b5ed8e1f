"""JSON nested past OPENFNF_MAX_JSON_DEPTH, or holding NaN/Infinity, is 400 InvalidArgument naming where it came in.

Through the real app (in process) on the fixture's redis-server; before issue 14 each of these was a
500 (RecursionError) or was stored and answered as text that is not JSON.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import make_app
from common.settings import Settings
from common.tokens import make_token
from tests.frontdoor import FORM_HEADERS, KEYS, PASS_FLOW, check_error, common_params, encode, sign, signed_request
from tests.integration.test_front_door_protocol import make_settings


def nested(depth: int) -> str:
    """A JSON object `depth` levels deep."""
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
def settings(redis_server: str, r: Any, tmp_path: Path) -> Settings:
    return make_settings(redis_server, tmp_path)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(make_app(settings))


async def send(client: TestClient, action: str, params: dict[str, str]) -> tuple[int, Any, str]:
    path, form = signed_request(action, params)
    resp = await client.post(path, data=form, headers=FORM_HEADERS)
    return resp.status, resp.headers, await resp.text()


async def create_flow(client: TestClient, name: str, mode: str = "") -> None:
    params = {"Name": name, "Definition": PASS_FLOW.format(name=name), "Type": "FDL"}
    if mode:
        params["ExecutionMode"] = mode
    status, _, text = await send(client, "CreateFlow", params)
    assert status == 200, text


def refused(status: int, headers: Any, text: str, name: str, why: str) -> None:
    body = check_error(status, headers, text, "InvalidArgument", 400)
    assert body["Message"].startswith(name) and why in body["Message"], body


@pytest.mark.parametrize("depth", [65, 990, 5000])
async def test_a_deep_input_is_400_naming_input(client: TestClient, depth: int) -> None:
    await create_flow(client, "deep")
    refused(*await send(client, "StartExecution", {"FlowName": "deep", "Input": nested(depth)}), "Input", "nests deeper than 64 levels")
    await create_flow(client, "deep_sync", "Express")
    refused(*await send(client, "StartSyncExecution", {"FlowName": "deep_sync", "Input": nested(depth)}), "Input", "nests deeper than 64 levels")


async def test_an_input_at_the_limit_starts(client: TestClient) -> None:
    await create_flow(client, "at_limit")
    status, _, text = await send(client, "StartExecution", {"FlowName": "at_limit", "Input": nested(64)})
    assert status == 200, text
    assert json.loads(text)["Input"] == nested(64)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": [-Infinity]}', '{"a": 1e400}'])
async def test_nan_and_infinity_in_input_are_400(client: TestClient, text: str) -> None:
    await create_flow(client, "nan")
    refused(*await send(client, "StartExecution", {"FlowName": "nan", "Input": text}), "Input", "JSON number")
    await create_flow(client, "nan_sync", "Express")
    refused(*await send(client, "StartSyncExecution", {"FlowName": "nan_sync", "Input": text}), "Input", "JSON number")


async def test_a_deep_or_nan_report_output_is_400_naming_output(client: TestClient, settings: Settings) -> None:
    token = make_token(settings.token_secret, "fid", "exec", "1")
    refused(*await send(client, "ReportTaskSucceeded", {"TaskToken": token, "Output": nested(65)}), "Output", "nests deeper")
    refused(*await send(client, "ReportTaskSucceeded", {"TaskToken": token, "Output": nested(5000)}), "Output", "nests deeper")
    refused(*await send(client, "ReportTaskSucceeded", {"TaskToken": token, "Output": '{"x": NaN}'}), "Output", "JSON number")
    # Text that is not JSON stays text (docs/compatibility.md): past the JSON check, to the token.
    check_error(*await send(client, "ReportTaskSucceeded", {"TaskToken": token, "Output": "plain words"}), "InvalidArgument", 400)


async def test_a_deep_schedule_payload_says_so(client: TestClient) -> None:
    await create_flow(client, "sched")
    params = {"FlowName": "sched", "ScheduleName": "s", "CronExpression": "0 * * * * *"}
    for depth in (65, 5000):
        refused(*await send(client, "CreateSchedule", {**params, "Payload": nested(depth)}), "Payload", "nests deeper than 64 levels")


async def test_a_json_body_names_the_deep_parameter(client: TestClient) -> None:
    """A JSON body is read before its signature is checked: what it cannot hold is refused first, by name."""
    await create_flow(client, "body")
    query = "/?" + encode(sign(common_params("StartExecution", "AKA"), {}, "POST", KEYS["AKA"][0]))
    for body, why in (
        ('{"FlowName": "body", "Input": ' + nested(65) + "}", "Input nests deeper than 64 levels."),
        ('{"FlowName": "body", "Input": ' + nested(3000) + "}", "The JSON body nests deeper than"),
        ('{"FlowName": "body", "Limit": NaN}', "The JSON body holds NaN, which is not a JSON number."),
    ):
        resp = await client.post(query, data=body, headers={"Content-Type": "application/json"})
        msg = check_error(resp.status, resp.headers, await resp.text(), "InvalidArgument", 400)["Message"]
        assert why in msg, msg


@pytest.mark.parametrize(
    "definition",
    [
        "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    Result: " + "[" * 5000 + "]" * 5000 + "\n    End: true\n",
        json.dumps({"Type": "StateMachine", "SpecVersion": "v1", "StartAt": "A", "States": []})[:-2] + "[" * 5000 + "]" * 5000 + "]}",
        "Type: StateMachine\nSpecVersion: v1\nStartAt: A\nStates:\n  - Type: Pass\n    Name: A\n    Result: .nan\n    End: true\n",
    ],
    ids=["deep-yaml", "deep-json", "yaml-nan"],
)
async def test_deep_or_nan_definitions_are_400(client: TestClient, definition: str) -> None:
    status, headers, text = await send(client, "CreateFlow", {"Name": "d", "Definition": definition, "Type": "FDL"})
    check_error(status, headers, text, "InvalidArgument", 400)
    await create_flow(client, "d")
    status, headers, text = await send(client, "UpdateFlow", {"Name": "d", "Definition": definition})
    check_error(status, headers, text, "InvalidArgument", 400)


async def test_the_limit_is_the_setting(aiohttp_client: Any, redis_server: str, r: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(make_settings(redis_server, tmp_path, max_json_depth=3)))
    await create_flow(client, "shallow")
    status, _, text = await send(client, "StartExecution", {"FlowName": "shallow", "Input": nested(3)})
    assert status == 200, text
    refused(*await send(client, "StartExecution", {"FlowName": "shallow", "Input": nested(4)}), "Input", "nests deeper than 3 levels")
    with pytest.raises(ValueError):
        make_settings(redis_server, tmp_path, max_json_depth=501)
