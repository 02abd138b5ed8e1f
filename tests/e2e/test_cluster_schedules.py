"""Schedules with the state on a real 3-primary Redis Cluster and two timers processes sharing the
partitioned due sets (issue 17): the same tests as test_schedules, on the cluster service."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Service
from tests.e2e.test_schedules import (  # noqa: F401 - collected here, on the cluster service
    test_create_describe_update_list_delete,
    test_deleting_the_flow_stops_its_schedules,
    test_every_second_for_ten_seconds_across_two_timers_processes,
)
from tests.rediscluster import running_cluster_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_cluster_service(tmp_path_factory.mktemp("cluster-sched"), workers=1, timers=2) as (service, _cluster):
        yield service


@pytest.fixture(scope="module")
def sdk(svc: Service) -> Any:
    return svc.client()
