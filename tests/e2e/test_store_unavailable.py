"""A front door whose Redis stops answering: 503 ServiceUnavailable (logged once), /readyz not ready,
and served again once Redis is back (issue 14)."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alibabacloud_fnf20190315 import models
from Tea.exceptions import TeaException

from openfnf.redisserver import start_redis
from tests.conftest import running_service

pytestmark = pytest.mark.e2e


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_requests_get_503_service_unavailable_while_redis_is_down(tmp_path: Path) -> None:
    with running_service(tmp_path, workers=0, timers=0) as svc:
        sdk = svc.client()
        sdk.list_flows(models.ListFlowsRequest())
        assert _readyz(svc.port) == 200
        assert svc.redis is not None
        svc.redis.stop()  # the store goes away under a running front door
        for _ in range(3):
            with pytest.raises(TeaException) as info:
                sdk.list_flows(models.ListFlowsRequest())
            assert (info.value.code, info.value.statusCode) == ("ServiceUnavailable", 503), info.value.message
        assert _readyz(svc.port) == 503
        assert svc.log("api").count("Redis does not answer") == 1  # once, not per request
        assert "InternalServerError" not in svc.log("api") and "Traceback" not in svc.log("api")

        svc.redis = start_redis(tmp_path / "redis")  # back on the same socket
        assert svc.redis.url == svc.redis_url
        assert sdk.list_flows(models.ListFlowsRequest()).body.flows == []
        assert _readyz(svc.port) == 200
        assert svc.log("api").count("Redis answers again") == 1
