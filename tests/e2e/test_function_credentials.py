"""Functions run for an execution get a key of that execution's account (issue 14): the callback
example, whose function reports its token with context.credentials through the official SDK, run by
two accounts of one credentials file on real processes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from alibabacloud_fnf20190315 import models

from tests.conftest import ROOT, new_sdk_client, running_service

pytestmark = pytest.mark.e2e

ACCOUNTS = {  # account id -> (access key id, secret)
    "1111111111": ("LTAIfirstaccount0001", "first-account-secret-0123456789"),
    "2222222222": ("LTAIsecondaccount001", "second-account-secret-0123456789"),
}


def test_each_account_s_function_reports_with_its_own_key(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_text(yaml.safe_dump({"accounts": [
        {"id": account, "access_keys": [
            {"id": f"{key_id}ro", "secret": "read-only-secret-0123", "policy": {"Statement": [
                {"Effect": "Allow", "Action": ["fnf:Describe*"], "Resource": ["*"]}]}},
            {"id": key_id, "secret": secret},
        ]}
        for account, (key_id, secret) in ACCOUNTS.items()
    ]}))  # fmt: skip
    first_key, first_secret = ACCOUNTS["1111111111"]
    env = {
        "OPENFNF_CREDENTIALS": str(creds),
        "OPENFNF_FUNCTIONS": str(ROOT / "examples" / "functions.yaml"),
        # what `openfnf dev` gives: the first account's key, for an account the file does not list
        "OPENFNF_FUNCTIONS_ACCESS_KEY_ID": first_key,
        "OPENFNF_FUNCTIONS_ACCESS_KEY_SECRET": first_secret,
    }
    definition = (ROOT / "examples" / "callback.yaml").read_text()
    workdir = tmp_path / "svc"
    workdir.mkdir()
    with running_service(workdir, workers=1, **env) as svc:
        for account, (key_id, secret) in ACCOUNTS.items():
            sdk: Any = new_sdk_client(svc.endpoint, key_id, secret)
            sdk.create_flow(models.CreateFlowRequest(name="example_callback", definition=definition, description="", type="FDL"))
            sdk.start_execution(models.StartExecutionRequest(flow_name="example_callback", execution_name="e1", input='{"order": "o-1"}'))
            body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="example_callback", execution_name="e1", wait_time_seconds=30)).body
            events = sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="example_callback", execution_name="e1")).body.events
            assert body.status == "Succeeded", (account, events[-1].event_detail)
            assert json.loads(body.output) == {"approved": True, "order": "o-1"}
