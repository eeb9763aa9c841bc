"""The sandbox's aiohttp server: the destination's endpoint plus a control API.

Endpoint: ``POST /{database}/{table}``. Checks, in order: the destination (404), the API key
(401), the WP13n token for the ``realtime`` profile (400 with 3000/3003/3001/3002), the
Content-Type (415), the rate limit (429 code 2003 with ``Retry-After``), the capacity model
(429 code 2013 above ``capacity`` requests in service), injected faults, then
the body (400 code 3004, 413). Success is 204, or 206 with ``receipts`` when a receipts fault
is set.

Control API (JSON):

- ``GET /_sandbox/stats``: ``accepted_events``, ``accepted_requests``, ``distinct_uuids``,
  ``duplicates``, ``rejected`` (``{"400:3004": n, "413": n}``), ``rejected_requests``,
  ``requests``, ``by_destination``;
- ``GET /_sandbox/uuids``: ``{"uuids": {uuid: count}}``;
- ``GET /_sandbox/events``: ``{"events": [[uuid, destination, count, first_received], ...]}``;
- ``GET /_sandbox/requests``: ``{"times": [epoch seconds of every request]}``;
- ``GET``/``PUT /_sandbox/faults``: the faults (``PUT`` changes the fields given);
- ``GET``/``PUT /_sandbox/auth``: ``{"api_key": ..., "tokens": [...]}``;
- ``GET``/``PUT /_sandbox/limits``: ``{"rate": ..., "burst": ...}`` (rate 0: no limit);
- ``POST /_sandbox/reset``: forget what was recorded; ``{"faults": true}`` clears faults too.

The personalization service of seed 004 is emulated on the same server, answering from what
was ingested: see ``personalization.py`` and ``profiles.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import socket
import ssl
import struct
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from forwarder.core.token_bucket import TokenBucket
from forwarder.sandbox import contract
from forwarder.sandbox.config import Faults, SandboxConfig
from forwarder.sandbox.faults import decide, receipt_failures, service_s
from forwarder.sandbox.personalization import PersonalizationEmulator
from forwarder.sandbox.recorder import Recorder

JSON = "application/json"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON)


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = replace(config.faults)
        self.api_key = config.api_key
        self.tokens = list(config.tokens)
        self.bucket = TokenBucket(config.rate, config.burst)
        self.recorder = Recorder()
        self.busy = 0  # requests in service under the capacity model
        self.rng = random.Random(config.seed)
        self.stopping = asyncio.Event()
        self.personalization = PersonalizationEmulator(
            lambda: self.api_key,
            self.rng,
            self.stopping,
            self._reset_connection,
            config.p13n_rate,
            config.p13n_burst_rate,
            config.p13n_burst_seconds,
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=contract.MAX_BODY_BYTES + 1024 * 1024)
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_get("/_sandbox/uuids", self._uuids)
        app.router.add_get("/_sandbox/events", self._events)
        app.router.add_get("/_sandbox/requests", self._requests)
        app.router.add_route("*", "/_sandbox/faults", self._faults)
        app.router.add_route("*", "/_sandbox/auth", self._auth)
        app.router.add_route("*", "/_sandbox/limits", self._limits)
        app.router.add_post("/_sandbox/reset", self._reset)
        self.personalization.add_routes(app)
        app.router.add_post("/{database}/{table}", self._ingest)
        return app

    # ------------------------------------------------------------------ endpoint

    def _error(self, error: contract.Error, retry_after: int | None = None) -> web.Response:
        self.recorder.reject(error.status, error.code)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.Response(
            body=contract.error_body(error, self.faults.error_shape),
            status=error.status,
            content_type=JSON,
            headers=headers,
        )

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        self.recorder.request()
        faults = self.faults
        database, table = request.match_info["database"], request.match_info["table"]
        error = (
            contract.check_destination(database, table, faults.reject_destinations)
            or contract.check_auth(request.headers, self.config.profile, self.api_key, self.tokens)
            or contract.check_content_type(request.headers.get("Content-Type", ""))
        )
        if error is not None:
            return self._error(error)
        wait = self.bucket.try_take(time.monotonic())
        if wait > 0:
            return self._error(
                contract.Error(429, 2003, "throttled: stream limit"), max(1, math.ceil(wait))
            )
        if faults.capacity or faults.service_ms:
            if faults.capacity and self.busy >= faults.capacity:
                return self._error(
                    contract.Error(429, 2013, "throttled: function concurrency"),
                    faults.capacity_retry_after_s,
                )
            self.busy += 1
            try:
                await asyncio.sleep(service_s(faults, self.busy))
                return await self._serve(request, database, table, faults)
            finally:
                self.busy -= 1
        return await self._serve(request, database, table, faults)

    async def _serve(
        self, request: web.Request, database: str, table: str, faults: Faults
    ) -> web.StreamResponse:
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        scoped = not faults.fault_destinations or (
            f"{database}.{table}" in faults.fault_destinations
        )
        fault = decide(faults, self.rng) if scoped else None
        if fault is not None:
            if fault.kind == "hang":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 3600)
                return web.Response(status=503)
            if fault.kind == "reset":
                return self._reset_connection(request)
            assert fault.rule is not None
            rule = fault.rule
            retry_after = (
                rule.retry_after_s
                if rule.retry_after_s is not None
                else (1 if rule.status in (429, 503) else None)
            )
            return self._error(
                contract.Error(rule.status, rule.code, "injected fault"), retry_after
            )
        events = contract.parse_body(await request.read())
        if isinstance(events, contract.Error):
            return self._error(events)
        if contract.matches(events, faults.reject_match):
            return self._error(contract.Error(400, 3004, "invalid event object"))
        if contract.matches(events, faults.fail_match):
            return self._error(contract.Error(500, faults.fail_match_code, "backend failed"))
        destination = f"{database}.{table}"
        if faults.receipts_fail_rate:
            failed = receipt_failures(len(events), faults.receipts_fail_rate, self.rng)
            accepted = [e for e, bad in zip(events, failed, strict=True) if not bad]
            self.recorder.accept(destination, accepted)
            self.personalization.profiles.add(accepted)
            receipts = [
                {"success": False, "code": faults.receipts_code} if bad else {"success": True}
                for bad in failed
            ]
            return _json({"receipts": receipts}, status=206)
        self.recorder.accept(destination, events)
        self.personalization.profiles.add(events)
        return web.Response(status=204)

    def _reset_connection(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: the close sends a TCP RST, a real "connection reset by peer".
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self.recorder.reject(0, None)
        raise asyncio.CancelledError  # nothing can be written to an aborted connection

    # ------------------------------------------------------------------ control API

    async def _stats(self, _request: web.Request) -> web.Response:
        return _json(self.recorder.stats())

    async def _uuids(self, _request: web.Request) -> web.Response:
        return _json({"uuids": self.recorder.counts})

    async def _events(self, _request: web.Request) -> web.Response:
        return _json({"events": self.recorder.events()})

    async def _requests(self, _request: web.Request) -> web.Response:
        return _json({"times": self.recorder.request_times})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        data = orjson.loads(await request.read() or b"{}")
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return data

    async def _faults(self, request: web.Request) -> web.Response:
        if request.method in ("PUT", "POST"):
            try:
                self.faults.update(await self._body(request))
            except (ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, status=400)
        return _json(self.faults.to_json())

    async def _auth(self, request: web.Request) -> web.Response:
        if request.method in ("PUT", "POST"):
            data = await self._body(request)
            self.api_key = str(data.get("api_key", self.api_key))
            self.tokens = [str(t) for t in data.get("tokens", self.tokens)]
        return _json({"api_key": self.api_key, "tokens": self.tokens})

    async def _limits(self, request: web.Request) -> web.Response:
        if request.method in ("PUT", "POST"):
            data = await self._body(request)
            self.bucket = TokenBucket(
                float(data.get("rate", self.bucket.rate)),
                float(data.get("burst", self.bucket.burst)),
            )
        return _json({"rate": self.bucket.rate, "burst": self.bucket.burst})

    async def _reset(self, request: web.Request) -> web.Response:
        data = await self._body(request)
        self.recorder.reset()
        self.personalization.reset()
        if data.get("faults"):
            self.faults = Faults()
        return _json({"reset": True})


@dataclass
class RunningSandbox:
    sandbox: Sandbox
    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        self.sandbox.stopping.set()
        await self.runner.cleanup()


async def start_sandbox(config: SandboxConfig) -> RunningSandbox:
    sandbox = Sandbox(config)
    runner = web.AppRunner(
        sandbox.app(), access_log=None, handler_cancellation=False, shutdown_timeout=1.0
    )
    await runner.setup()
    tls = None
    if config.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(config.tls_cert, config.tls_key or None)
    site = web.TCPSite(runner, config.host, config.port, backlog=1024, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else config.port
    host = f"[{config.host}]" if ":" in config.host else config.host
    scheme = "https" if tls else "http"
    return RunningSandbox(sandbox, runner, f"{scheme}://{host}:{port}", port)


def write_test_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 and localhost: (ca, cert, key) PEM files.

    Needs ``trustme`` (the dev extra): a test certificate, never one to use in earnest.
    """
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="forwarder sandbox CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = (directory / "sandbox-ca.pem", directory / "sandbox.pem", directory / "sandbox.key")
    ca.cert_pem.write_to_path(str(paths[0]))
    paths[1].write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(paths[2]))
    return paths


def serve(config: SandboxConfig) -> None:
    """Run until SIGINT/SIGTERM (the ``forwarder sandbox`` command)."""

    async def main() -> None:
        running = await start_sandbox(config)
        print(f"sandbox ({config.profile}) listening on {running.url}", flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await done.wait()
        await running.stop()

    asyncio.run(main())
