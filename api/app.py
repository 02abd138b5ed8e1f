"""The aiohttp front door: one route, RPC dispatch, errors as the SDKs parse them."""
from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.exceptions
from aiohttp import web

from api import health, metrics, spans
from api.actions import ALL_ACTIONS, HANDLERS
from api.actions.context import Call
from api.actionspec import validate as validate_params
from api.admission import admit
from api.auth import verify
from api.batching import PipelineBatcher
from api.credentials import AccessKey, Keyring
from api.handoff import DrivePublisher
from api.handoff_amqp import AmqpDrivePublisher
from api.protocol import ACTION, REQUEST_ID, parse_request, server_limits
from api.throttle import Limiter
from api.waiters import EndWaiters
from common import brokers, tracing
from common.browse import queue_throttled
from common.errors import (
    ActionNotSupported,
    FnfError,
    InternalServerError,
    MethodNotAllowed,
    PathNotFound,
    ResourceThrottled,
    ServiceUnavailable,
)
from common.logs import request_id_var
from common.redisclients import async_node_client, async_state_client
from common.scripts import Scripts
from common.settings import Settings
from common.store import Store

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
PUBLISHER = web.AppKey("publisher", DrivePublisher)
WAITERS = web.AppKey("waiters", EndWaiters)
LIMITER = web.AppKey("limiter", Limiter)
KEYS = web.AppKey("keys", Keyring)  # access key id -> AccessKey, reloaded when the credentials file changes
BATCHER = web.AppKey("batcher", PipelineBatcher)  # the hot path's Redis round trips, one pipeline per loop iteration
STORE_DOWN = web.AppKey("store_down", list)  # [True] while Redis does not answer (logged once when it stops, once when it is back)

# What a Redis that does not answer raises: redis-py's connection errors and timeouts (BusyLoadingError,
# a restarted server loading its AOF, is one), and the hot-path batch's own timeout (api/batching.py).
# Not the builtin ConnectionError: a client that goes away mid-request raises that.
# On a cluster, a shard between primaries (CLUSTERDOWN, a slot no node serves) or a slot half moved
# (TRYAGAIN) is the same: a moment's unavailability, not a bug. So is redis-py's ClusterError once its
# redirections ran out ("TTL exhausted": a claim, a script over several keys, in a slot being migrated
# meets TRYAGAIN until the migration of that slot ends).
STORE_UNREACHABLE = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError,
    redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError, redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ClusterError,
)  # fmt: skip

HOST_ID = "fnf.openfnf.local"
REDIS_TIMEOUT_SECONDS = 5.0  # a hot-path batch Redis does not answer within this fails (redis-py's own socket timeout)


_ACTION_NAMES = {name.lower(): name for name in ALL_ACTIONS}
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # json.dumps with these options builds one per call


def _json(body: dict[str, Any], status: int, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        body=_ENCODER.encode(body).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )
    response.headers["x-acs-request-id"] = request_id
    return response


def error_response(err: FnfError, request_id: str) -> web.Response:
    """The error body the SDKs parse: {RequestId, HostId, Code, Message}."""
    body = {"RequestId": request_id, "HostId": HOST_ID, "Code": err.code, "Message": err.message}
    headers = {}
    retry_after = getattr(err, "retry_after_ms", None)
    if retry_after is not None:
        headers["x-acs-retry-after"] = str(max(1, int(retry_after)))
    return _json(body, err.http_status, request_id, headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every answer carries a request id; FnfErrors become their documented body; bugs become 500."""
    request_id = str(uuid.uuid4()).upper()
    token = request_id_var.set(request_id)
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except FnfError as err:
        if err.code == ResourceThrottled.code:
            await _count_throttled(request)
        return error_response(err, request_id)
    except STORE_UNREACHABLE as exc:
        down = request.app[STORE_DOWN]
        if not down:
            down.append(True)
            logger.error("Redis does not answer (%s: %s): requests get 503 ServiceUnavailable until it does", type(exc).__name__, exc)
        return error_response(ServiceUnavailable(), request_id)
    except web.HTTPNotFound:  # a path other than / (the router's answer)
        return error_response(PathNotFound(request.path[:200]), request_id)
    except web.HTTPMethodNotAllowed:
        return error_response(MethodNotAllowed(request.method[:20]), request_id)
    except web.HTTPException as exc:
        exc.headers.setdefault("x-acs-request-id", request_id)
        raise
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(InternalServerError(), request_id)
    finally:
        request_id_var.reset(token)
    if not response.prepared:
        response.headers.setdefault("x-acs-request-id", request_id)
    down = request.app[STORE_DOWN]
    if down and response.status == 200:
        down.clear()
        logger.warning("Redis answers again: requests are served")
    return response


async def _count_throttled(request: web.Request) -> None:
    """Count a 429 in the shared per-minute counter the console's overview charts (one pipelined INCR + EXPIRE)."""
    batcher = request.app.get(BATCHER)
    if batcher is None:
        return
    try:
        await batcher.pipeline(lambda pipe: queue_throttled(pipe, int(time.time() * 1000)))
    except STORE_UNREACHABLE:  # the answer is a 429 either way; the chart misses one
        logger.debug("cannot count a throttled answer in Redis")


async def rpc(request: web.Request) -> web.Response:
    """`GET|POST /?Action=...`: parse, authenticate, dispatch."""
    app = request.app
    settings = app[SETTINGS]
    now = int(time.time() * 1000)
    req = await parse_request(request, settings.max_request_bytes, settings.body_read_timeout_seconds, settings.max_json_depth)
    # Action names in any letter case (pop-core's formatAction; docs/compatibility.md): the catalogue's spelling from here on.
    action = _ACTION_NAMES.get(req.action.lower())
    if action is None:
        request[ACTION] = req.action
        raise ActionNotSupported(req.action[:100])
    req.action = request[ACTION] = action
    tracing.request_action(action)  # the request span's name (no-op when tracing is off)
    verified = verify(req, app[KEYS], now, settings.timestamp_skew_seconds)  # the signature (CPU)
    key: AccessKey = verified.key
    # Next, in this order (DESIGN.md "StartExecution"): the nonce, the policy, then throttling; one
    # round trip (api/admission.py), the last check before the handler: a refused request changes nothing.
    admitted = await admit(verified, req.action, req.params, now, store=app[STORE], limiter=app[LIMITER], runner=app[BATCHER])
    validate_params(req.action, req.params, settings.max_json_depth)  # Appendix A: required and typed parameters, for every action
    handler = HANDLERS.get(req.action)
    if handler is None:
        raise ActionNotSupported(message=f"The API operation '{req.action}' is not supported by this server yet.")
    call = Call(
        key=key,
        params=req.params,
        now=now,
        settings=settings,
        store=app[STORE],
        publisher=app[PUBLISHER],
        waiters=app[WAITERS],
        flow_head=admitted.flow_head,
        execution_name=admitted.execution_name,
        woken=admitted.woken,
    )
    body = await handler(call)
    body["RequestId"] = request[REQUEST_ID]
    return _json(body, 200, request[REQUEST_ID])


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Open Redis clients, the drive publisher and the long-poll listener; close them on shutdown."""
    settings = app[SETTINGS]
    state = async_state_client(settings, max_connections=256)
    broker = brokers.async_broker(settings, state)  # the state client, another Redis, or RabbitMQ (refuses a cluster)
    # The hot path's own client: no per-command socket timeout (redis-py arms one per read and wraps
    # each write in a task); each batch has one timeout instead (api/batching.py).
    hot = async_state_client(settings, max_connections=64, socket_timeout=None, socket_connect_timeout=5)
    batcher = PipelineBatcher(hot, Scripts(hot), timeout=REDIS_TIMEOUT_SECONDS)
    app[BATCHER] = batcher
    app[STORE] = Store(state, settings, runner=batcher)
    if isinstance(broker, brokers.AsyncAmqpQueues):
        await broker.start()
        app[PUBLISHER] = AmqpDrivePublisher(settings, broker)  # publisher confirms (api/handoff_amqp.py)
    else:
        app[PUBLISHER] = DrivePublisher(broker, settings.drive_queue, settings.drive_batch)
    limiter = Limiter(state, settings)
    await limiter.start()  # seeds the --throttle / --throttle-profile rules, then refreshes them in the background
    app[LIMITER] = limiter
    waiters = EndWaiters(state, functools.partial(async_node_client, settings))
    app[WAITERS] = waiters
    await waiters.start()
    health.register_clients(app, state, broker)  # what /readyz pings
    health.on_drain(app, waiters.wake_all)  # on SIGTERM, long polls answer before the drain deadline
    try:
        yield
    finally:
        await limiter.stop()
        await waiters.stop()
        await batcher.close()
        await hot.aclose()
        await state.aclose()
        if broker is not state:
            await broker.aclose()


async def _credentials(app: web.Application) -> AsyncIterator[None]:
    """Reload the credentials file when it changes or on SIGHUP, while the app runs."""
    async with app[KEYS].watching():
        yield


def make_app(settings: Settings) -> web.Application:
    """The front door application for these settings."""
    app = web.Application(
        middlewares=[*spans.middlewares(), metrics.metrics_middleware, errors_middleware],  # spans: tracing on
        client_max_size=settings.max_request_bytes + 1,
        handler_args=server_limits(settings),  # slow clients and oversized requests (api/protocol.py)
    )
    app[SETTINGS] = settings
    app[STORE_DOWN] = []
    app[KEYS] = Keyring(settings)
    app.cleanup_ctx.append(_credentials)
    app.cleanup_ctx.append(_resources)
    app.router.add_route("GET", "/", rpc)
    app.router.add_route("POST", "/", rpc)
    health.setup(app, settings.shutdown_timeout_seconds)  # GET /healthz, /readyz: no auth, no RPC pipeline
    metrics.setup(app)  # GET /metrics
    return app


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it imports (less CPU per request), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _settle_heap(app: web.Application) -> None:
    """Once the front door is up: move what start-up allocated out of the garbage collector's sight,
    and collect the young generation less often. Requests allocate many short-lived objects; with
    the default thresholds a full collection walked the whole start-up heap every few thousand
    requests (~35 ms, every request in flight waiting: the p99 of the bench), and collections took
    ~6% of the front door's CPU (python -m bench --only start)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def run(settings: Settings, extend: Callable[[web.Application], None] | None = None) -> None:
    """Serve the front door until SIGINT/SIGTERM; `extend` adds to the app first (the console, from the composition root)."""
    brokers.refuse_cluster_broker(settings)
    brokers.refuse_cluster_server(settings)  # a broker URL naming a cluster node: refused with a clear message
    app = make_app(settings)
    if extend is not None:
        extend(app)
    app.on_startup.append(_settle_heap)  # after the resources (cleanup_ctx runs first); this process only, not tests
    web.run_app(
        app, host=settings.host, port=settings.port, access_log=None, print=None,
        reuse_port=settings.reuse_port or None,  # several front door processes on one port
        shutdown_timeout=settings.shutdown_timeout_seconds,  # SIGTERM: stop listening, let in-flight requests finish
        loop=new_event_loop(),
    )  # fmt: skip
