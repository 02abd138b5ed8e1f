"""The bare front-door limit: an aiohttp app whose handler does nothing but answer a small JSON body.

    python -m bench.noop PORT
"""
from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"RequestId":"00000000-0000-0000-0000-000000000000","Status":"Running"}'


async def noop(request: web.Request) -> web.Response:
    """Read the body (as the front door must), answer at once."""
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    """Serve on 127.0.0.1:PORT until SIGTERM."""
    app = web.Application()
    app.router.add_route("*", "/", noop)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
