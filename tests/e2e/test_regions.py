"""DescribeRegions through the official SDK: the configured region(s), as the SDK model reads them."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from openfnf.redisserver import free_port
from tests.conftest import Service, new_sdk_client, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Only front doors (DescribeRegions needs no worker): one with the defaults, one configured."""
    with running_service(tmp_path_factory.mktemp("regions"), workers=0, timers=0) as svc:
        yield svc


def regions(client: Any, language: str | None = None) -> list[Any]:
    body = client.describe_regions(models.DescribeRegionsRequest(accept_language=language)).body
    assert body.request_id
    return list(body.regions.region)


def test_the_default_is_the_one_configured_region(front: Service) -> None:
    [region] = regions(front.client())
    assert region.region_id == "cn-hangzhou"
    assert region.local_name == "华东1（杭州）"  # AcceptLanguage omitted: zh-CN, as the cloud's API
    assert region.region_endpoint == f"127.0.0.1:{front.port}"  # this front door
    [english] = regions(front.client(), "en-US")
    assert english.local_name == "China (Hangzhou)"
    assert english.to_map() == {"RegionId": "cn-hangzhou", "LocalName": "China (Hangzhou)", "RegionEndpoint": f"127.0.0.1:{front.port}"}


def test_configured_regions_names_and_endpoint(front: Service) -> None:
    port = free_port()
    front.start("api_multi", "api", "--port", str(port), env={
        "OPENFNF_REGIONS": "cn-shanghai, ap-southeast-1,edge-dc-1=Edge datacenter 1",
        "OPENFNF_PUBLIC_ENDPOINT": "fnf.example.internal:8443",
    })  # fmt: skip
    client = new_sdk_client(f"127.0.0.1:{port}", front.key_id, front.secret)
    got = [(r.region_id, r.local_name, r.region_endpoint) for r in regions(client, "en-US")]
    assert got == [
        ("cn-shanghai", "China (Shanghai)", "fnf.example.internal:8443"),
        ("ap-southeast-1", "Singapore", "fnf.example.internal:8443"),
        ("edge-dc-1", "Edge datacenter 1", "fnf.example.internal:8443"),
    ]
    assert [r.local_name for r in regions(client, "zh-CN")] == ["华东2（上海）", "新加坡", "Edge datacenter 1"]
    front.stop("api_multi")
