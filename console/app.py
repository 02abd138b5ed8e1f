"""The console as an aiohttp application: its resources, sign-in middleware, CSRF check and rendering.

It reads through common's store and acts through common/control.py (the functions the API's actions
call); it never calls its own RPC endpoint. The composition root mounts it at /console/ on the
front door's port, or serves it on a port of its own (`attach`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from common import brokers
from common.credentials import AccessKey, Keyring
from common.redisclients import async_state_client
from common.settings import Settings
from common.store import Store
from common.taskmsg import drive_messages
from console.sessions import COOKIE, COOKIE_PATH, Session, Sessions, same_token
from console.views import PREFIX

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

SETTINGS = web.AppKey("console_settings", Settings)
STORE = web.AppKey("console_store", Store)
SESSIONS = web.AppKey("console_sessions", Sessions)
KEYS = web.AppKey("console_keys", Keyring)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)


class Drives:
    """Hands executions to the workers: a drive message on the broker's queue (as api/handoff.py, unbatched)."""

    def __init__(self, broker: Any, queue: str) -> None:
        self.broker = broker
        self.queue = queue

    async def __call__(self, tag: str) -> None:
        # kombu's consumer pops from the right, so LPUSH keeps arrival order.
        await self.broker.lpush(self.queue, *drive_messages([tag], self.queue, 1))


PUBLISH = web.AppKey("console_publish", Drives)

SESSION = web.RequestKey("console_session", Session)  # the signed-in session
KEY = web.RequestKey("console_key", AccessKey)  # its access key

OPEN_ROUTES = frozenset({"signin", "signin_post", "static", "index"})


class Refused(Exception):
    """A console request answered with a page: a status and a message (403, 404, 400, 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def templates() -> jinja2.Environment:
    """The page templates (autoescaped)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A page from a template, with what every page shows (who is signed in, the CSRF token)."""
    session: Session | None = request.get(SESSION)
    key: AccessKey | None = request.get(KEY)
    body = request.app[TEMPLATES].get_template(template).render(
        base=PREFIX, session=session, key=key, csrf=session.csrf if session else "", **context
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    return response


def now_ms() -> int:
    """The wall clock in epoch ms."""
    return int(time.time() * 1000)


@web.middleware
async def console_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Signed in or sent to sign in; CSRF on every POST; refusals and FnfErrors become pages."""
    route = request.match_info.route.name or ""
    if route not in OPEN_ROUTES:
        session = await request.app[SESSIONS].get(request.cookies.get(COOKIE))
        key = request.app[KEYS].get(session.key_id) if session else None
        if session is None or key is None or not key.enabled:
            if request.method == "GET" and route != "live":
                raise web.HTTPSeeOther(f"{PREFIX}/signin?" + urlencode({"next": request.rel_url.path_qs}))
            return render(request, "error.html", status=401, title="Signed out", message="Your session has ended: sign in again.")
        request[SESSION] = session
        request[KEY] = key
        if request.method == "POST":
            form = await request.post()
            if not same_token(session.csrf, _str(form.get("csrf"))):
                return render(request, "error.html", status=403, title="Refused", message=CSRF_MESSAGE)
    try:
        return await handler(request)
    except Refused as exc:
        return render(request, "error.html", status=exc.status, title=TITLES.get(exc.status, "Error"), message=exc.message)
    except web.HTTPException:
        raise
    except Exception:  # a bug: logged once, answered as a page (the front door would answer JSON)
        logger.exception("console error in %s %s", request.method, request.path)
        return render(request, "error.html", status=500, title="Error", message="The console failed to answer; the log has the details.")


CSRF_MESSAGE = "This form did not come from your console session (its CSRF token is missing or wrong). Reload the page and try again."
TITLES = {400: "Invalid request", 403: "Not allowed", 404: "Not found", 409: "Cannot do that now", 429: "Too many attempts"}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """The console's own Redis clients, store, sessions and credentials watcher (no SIGHUP hook: the API owns it)."""
    settings = app[SETTINGS]
    state = async_state_client(settings, max_connections=32, socket_timeout=10, socket_connect_timeout=5)
    broker = brokers.async_broker(settings, state, max_connections=8)  # a Redis, or RabbitMQ (common/brokers.py)
    app[STORE] = Store(state, settings)
    app[SESSIONS] = Sessions(state, settings.console_session_seconds, settings.console_signin_attempts)
    app[PUBLISH] = Drives(broker, settings.drive_queue)
    watcher = asyncio.create_task(app[KEYS].watch()) if settings.credentials is not None else None
    try:
        yield
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await state.aclose()
        if broker is not state:
            await broker.aclose()


def make_console(settings: Settings) -> web.Application:
    """The console application; its routes start with /console when mounted by `attach`."""
    from console import pages

    app = web.Application(middlewares=[console_middleware])
    app[SETTINGS] = settings
    app[KEYS] = Keyring(settings)
    app[TEMPLATES] = templates()
    app.cleanup_ctx.append(_resources)
    pages.setup(app)
    app.router.add_static("/static/", HERE / "static", name="static", append_version=False)
    return app


def attach(front_door: web.Application, settings: Settings) -> None:
    """Serve the console with the front door: at /console/ on its port, or on console_port (same host)."""
    console = make_console(settings)
    if not settings.console_port:
        front_door.add_subapp(PREFIX + "/", console)
        return
    holder = web.Application()
    holder.add_subapp(PREFIX + "/", console)

    async def own_port(_: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(holder, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.console_port, reuse_port=settings.reuse_port or None)
        await site.start()
        try:
            yield
        finally:
            await runner.cleanup()

    front_door.cleanup_ctx.append(own_port)


def cookie_args(settings: Settings) -> dict[str, Any]:
    """How the session cookie is set: HttpOnly, SameSite=Strict, scoped to the console's path."""
    return {"httponly": True, "samesite": "Strict", "path": COOKIE_PATH, "secure": settings.console_secure_cookie or None}
