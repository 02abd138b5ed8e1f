"""The walking skeleton with the state on a real 3-primary Redis Cluster (OPENFNF_REDIS_CLUSTER=true)
and the broker on a separate redis-server: the same tests as test_walking_skeleton, through both SDKs."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Service
from tests.e2e.test_walking_skeleton import (  # noqa: F401 - collected here, on the cluster service
    test_a_failing_flow_ends_failed,
    test_flow_crud_and_paging,
    test_history_pages_with_next_token,
    test_invalid_definition_and_unknown_step_type_are_400,
    test_list_and_stop_and_missing_execution,
    test_new_sdk_runs_a_flow_to_succeeded,
    test_old_sdk_runs_a_flow_to_succeeded,
    test_old_sdk_sees_documented_errors,
    test_wrong_secret_is_refused,
)
from tests.rediscluster import running_cluster_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_cluster_service(tmp_path_factory.mktemp("cluster-svc")) as (svc, _cluster):
        yield svc


@pytest.fixture(scope="module")
def sdk(service: Service) -> Any:
    return service.client()
