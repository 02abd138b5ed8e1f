"""A distributed Map with RabbitMQ as the broker: the MapRun's drives, its children's drives and
UpdateMapRun's wake-up all travel over AMQP (issue 16)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_fnf20190315 import models

from tests.conftest import running_service
from tests.rabbitmq import RabbitServer, start_rabbitmq

pytestmark = pytest.mark.e2e

FLOW = """Type: StateMachine
SpecVersion: v1
StartAt: M
States:
  - Type: Map
    Name: M
    ProcessorConfig: {ExecutionMode: Standard}
    ItemReader: {SourceType: OSS_CSV, SourceParameters: {Bucket: data, ObjectName: rows.csv}}
    MaxConcurrency: 5
    Processor: {StartAt: W, States: [{Type: Wait, Name: W, Seconds: 0, Next: P}, {Type: Pass, Name: P, End: true}]}
    End: true
"""


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield server
    finally:
        server.close()


def test_distributed_map_runs_over_rabbitmq(tmp_path: Path, rabbit: RabbitServer) -> None:
    buckets = tmp_path / "buckets"
    (buckets / "data").mkdir(parents=True)
    (buckets / "data" / "rows.csv").write_text("n\n" + "".join(f"{i}\n" for i in range(60)))
    env = {"OPENFNF_BROKER_URL": rabbit.url, "OPENFNF_DRIVE_QUEUE": "dm.drives", "OPENFNF_ACTIVITY_QUEUE": "dm.activities",
           "OPENFNF_BUCKETS_DIR": str(buckets)}  # fmt: skip
    with running_service(tmp_path, workers=1, timers=1, **env) as svc:
        sdk = svc.client()
        sdk.create_flow(models.CreateFlowRequest(name="dm", definition=FLOW, description="", type="FDL"))
        name = sdk.start_execution(models.StartExecutionRequest(flow_name="dm", input="{}")).body.name
        run = ""
        deadline = time.monotonic() + 60
        while not run:
            assert time.monotonic() < deadline
            for e in sdk.get_execution_history(models.GetExecutionHistoryRequest(flow_name="dm", execution_name=name)).body.events:
                if e.type == "MapRunStarted":
                    run = json.loads(e.event_detail)["output"]["MapRunName"]
            time.sleep(0.05)
        try:
            sdk.update_map_run(models.UpdateMapRunRequest(flow_name="dm", execution_name=name, map_run_name=run, concurrency=20))
        except Exception as err:  # the run may have ended already on a fast machine
            assert getattr(err, "code", "") == "MapRunAlreadyCompleted", err
        body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name="dm", execution_name=name, wait_time_seconds=60)).body
        assert body.status == "Succeeded", body.status
        assert json.loads(body.output) == {"Items": [{"n": str(i)} for i in range(60)]}
        counts = sdk.describe_map_run(models.DescribeMapRunRequest(flow_name="dm", execution_name=name, map_run_name=run)).body.item_counts
        assert (counts.total, counts.succeed) == (60, 60)
