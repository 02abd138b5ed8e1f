"""Probes and draining: `GET /healthz`, `GET /readyz`, and what SIGTERM does to long polls.

Both probes answer without authentication and outside the RPC pipeline (own routes, no
parsing, no signature). `/healthz` says the process and its event loop are up; `/readyz`
says Redis (state and broker) answers a PING, and turns 503 once the process is draining.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from common.redisclients import is_cluster

logger = logging.getLogger(__name__)

PING_TIMEOUT = 1.0  # seconds; a probe must answer well within the orchestrator's probe timeout
LONG_POLL_MARGIN = 1.0  # seconds before the forced cancellation at which long polls answer with what they have

DRAINING = web.AppKey("draining", asyncio.Event)
CLIENTS = web.AppKey("health_clients", list)  # redis.asyncio clients /readyz pings
WAKE_ALL = web.AppKey("health_wake_all", list)  # callables that end every long poll now
TIMERS = web.AppKey("health_timers", list)  # the pending wake-up of long polls while draining


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body + "\n", headers={"Cache-Control": "no-store"})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process serves HTTP (no I/O: a slow Redis must not get it killed)."""
    return _text(200, "ok")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 if every Redis answers a PING within PING_TIMEOUT, else 503; 503 while draining."""
    if request.app[DRAINING].is_set():
        return _text(503, "draining")
    for client in request.app[CLIENTS]:
        try:
            # A cluster: every primary must answer (a shard down fails its share of every request).
            target = {"target_nodes": client.PRIMARIES} if is_cluster(client) else {}
            await asyncio.wait_for(client.ping(**target), PING_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means "do not send me traffic"; the reason goes in the body
            return _text(503, f"redis unreachable: {type(exc).__name__}")
    return _text(200, "ready")


def register_clients(app: web.Application, *clients: Any) -> None:
    """Tell /readyz which Redis clients to ping (called once the clients are open)."""
    app[CLIENTS][:] = list(dict.fromkeys(clients))


def on_drain(app: web.Application, wake_all: Any) -> None:
    """Register a callable that ends every pending long poll (they then answer with the current state)."""
    app[WAKE_ALL].append(wake_all)


async def _drain(app: web.Application, timeout: float) -> None:
    """on_shutdown: the listener is already closed; mark not ready, and answer long polls before the deadline.

    aiohttp then waits up to `timeout` for in-flight handlers and cancels the rest. A long poll
    whose execution ends meanwhile answers as usual; one still waiting just before the deadline
    is woken and answers with the execution's current state instead of a reset connection.
    """
    app[DRAINING].set()
    logger.info("draining: no new connections; in-flight requests have %.1f s", timeout)

    def wake() -> None:
        for wake_all in app[WAKE_ALL]:
            wake_all()

    app[TIMERS].append(asyncio.get_running_loop().call_later(max(0.0, timeout - LONG_POLL_MARGIN), wake))


async def _cancel_timers(app: web.Application) -> None:
    for handle in app[TIMERS]:
        handle.cancel()


def setup(app: web.Application, shutdown_timeout: float) -> None:
    """Add the probe routes and the draining hook to the front door."""
    app[DRAINING] = asyncio.Event()
    app[CLIENTS] = []
    app[WAKE_ALL] = []
    app[TIMERS] = []
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)

    async def drain(app: web.Application) -> None:
        await _drain(app, shutdown_timeout)

    app.on_shutdown.append(drain)
    app.on_cleanup.append(_cancel_timers)
