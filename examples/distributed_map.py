"""Run examples/distributed_map.yaml on `openfnf dev --buckets examples/buckets` and show its MapRun.

Export OPENFNF_ACCESS_KEY_ID / OPENFNF_ACCESS_KEY_SECRET (printed by `openfnf dev`) and run
`python examples/distributed_map.py` from the repository root.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from alibabacloud_fnf20190315 import models
from alibabacloud_fnf20190315.client import Client
from alibabacloud_tea_openapi.models import Config

client = Client(Config(
    access_key_id=os.environ["OPENFNF_ACCESS_KEY_ID"], access_key_secret=os.environ["OPENFNF_ACCESS_KEY_SECRET"],
    endpoint=os.environ.get("OPENFNF_ENDPOINT", "127.0.0.1:8080"), protocol="http", read_timeout=70000,
))  # fmt: skip
definition = (Path(__file__).parent / "distributed_map.yaml").read_text()
try:
    client.create_flow(models.CreateFlowRequest(name="price_orders", definition=definition, description="distributed Map", type="FDL"))
except Exception as err:  # already created by an earlier run
    if getattr(err, "code", "") != "FlowAlreadyExists":
        raise
name = client.start_execution(models.StartExecutionRequest(flow_name="price_orders", input=json.dumps({"rate": 1.1}))).body.name
done = client.describe_execution(models.DescribeExecutionRequest(flow_name="price_orders", execution_name=name, wait_time_seconds=60)).body
print(done.status, done.output)
run = json.loads(done.output)["MapRunName"]
counts = client.describe_map_run(models.DescribeMapRunRequest(flow_name="price_orders", execution_name=name, map_run_name=run)).body.item_counts
print(f"items: {counts.total} total, {counts.succeed} succeeded, {counts.failed} failed")
children = client.list_executions(models.ListExecutionsRequest(flow_name="price_orders", map_run_name=run)).body.executions
print(f"{len(children)} child executions, e.g. {children[0].name}")
