"""What a worker's HTTP port answers before the worker is built: 503 on every path but ``/livez``, with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from streams.settings import Settings
from streams.web.access import secure_headers


@asynccontextmanager
async def answering_starting(settings: Settings, reason: str) -> AsyncIterator[None]:
    """Serve ``503 {"status": "starting"}`` on the worker's address until the block ends, then free the port for the worker.

    ``/livez`` answers 200: the process is alive, and ends by itself if the start takes too long.
    """

    async def starting(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "starting", "reason": reason}), status=503, content_type="application/json")

    async def alive(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "alive", "starting": reason}), content_type="application/json")

    app = web.Application()
    app.router.add_route("GET", "/livez", alive)
    app.router.add_route("*", "/{path:.*}", starting)
    app.on_response_prepare.append(secure_headers)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    except OSError:  # the port is taken: the worker's own start will say so
        await runner.cleanup()
        yield
        return
    try:
        yield
    finally:
        await runner.cleanup()
