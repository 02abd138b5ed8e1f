"""The web console with the state on a real 3-primary Redis Cluster (issue 17: the console works on a
cluster): every route, signed in with the full-access key, answers as tests/integration/test_console_access.py
expects on one Redis (the key kinds and CSRF are checked there; they do not depend on the topology)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient

from common.settings import Settings
from console.app import attach
from tests.integration.test_console_access import PATHS, TABLE, _seed, _settings, _sign_in
from tests.rediscluster import Cluster, start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(Path(tmp_path_factory.mktemp("console-cluster")), 3)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def console(aiohttp_client: Any, cluster: Cluster, redis_server: str, tmp_path: Path) -> tuple[TestClient, Settings]:
    for node in cluster.primaries():
        node.client().flushall()
    # The broker on a Redis of its own (a cluster cannot be Celery's broker): the console publishes drives there.
    settings = _settings(cluster.url, tmp_path).model_copy(update={"redis_cluster": True, "broker_url": redis_server})
    await _seed(settings, None)
    app = web.Application()
    attach(app, settings)
    client = await aiohttp_client(app, cookie_jar=CookieJar(unsafe=True))
    return client, settings


@pytest.mark.parametrize("route", list(PATHS))
async def test_every_console_route_works_on_a_cluster(console: tuple[TestClient, Settings], route: str) -> None:
    client, _ = console
    csrf = await _sign_in(client, "full")
    method, path, data = PATHS[route]
    if method == "GET":
        resp = await client.get(path, allow_redirects=False)
    else:
        resp = await client.post(path, data={"csrf": csrf, **data}, allow_redirects=False)
    assert resp.status == TABLE[route]["full"], (route, (await resp.text())[:500])
