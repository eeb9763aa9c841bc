"""The operations port: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

``/healthz`` answers from the event loop itself, so a wedged loop fails it. ``/readyz`` is 200
only while the pipeline has joined its group, has a working producer and is not paused on an
endpoint fault; its body says which of those is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class OpsServer:
    def __init__(
        self, registry: CollectorRegistry, readiness: Callable[[], tuple[bool, str]]
    ) -> None:
        self._registry = registry
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, why = self._readiness()
        return web.Response(status=200 if ready else 503, text=f"{why}\n")

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
