"""The sandbox's personalization service (seed 004), on the same server as the ingest endpoint.

``POST /audiences/{parent_segment_id}/personalization/{service}`` with ``Authorization: TD1
<key>`` and a flat JSON body (``user_id`` plus context), and the same path plus ``/test`` with
``{"user_id", "input_params"}``. Checks in order: the key (401), the service (404 when it is not
in the configured list; an empty list knows every service), the limit (100/s, bursts of 200/s
for 10 s: 429 with ``Retry-After``), injected faults (errors, latency, hangs, resets, as on the
ingest side). The answer comes from ``Profiles``: what the sandbox ingested for that user, with
``timestamp`` and ``processing_time_ms``.

Control API: ``GET``/``PUT /_sandbox/personalization`` (``api_key``, ``services``, ``rate``,
``burst_rate``, ``burst_seconds``, ``faults``), ``GET /_sandbox/personalization/requests``
(``times`` of arrival, ``outcomes`` (the status of each), ``statuses``, ``by_user``), ``POST /_sandbox/personalization/reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from forwarder.core.rate_reserve import ReserveLimiter
from forwarder.sandbox.config import Faults
from forwarder.sandbox.faults import decide
from forwarder.sandbox.profiles import Profiles

PATH = "/audiences/{segment}/personalization/{service}"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


class PersonalizationEmulator:
    def __init__(
        self,
        api_key: Callable[[], str],
        rng: random.Random,
        stopping: asyncio.Event,
        reset_connection: Callable[[web.Request], web.StreamResponse],
        rate: float = 100.0,
        burst_rate: float = 200.0,
        burst_seconds: float = 10.0,
    ) -> None:
        self.profiles = Profiles()
        self._default_key = api_key
        self._rng = rng
        self._stopping = stopping
        self._reset_connection = reset_connection
        self.api_key: str | None = None  # None: the ingest endpoint's key
        self.services: list[str] = []  # "segment/service"; empty: every service exists
        self.faults = Faults()
        self._set_limits(rate, burst_rate, burst_seconds)
        self.reset()

    def _set_limits(self, rate: float, burst_rate: float, burst_seconds: float) -> None:
        self.rate, self.burst_rate, self.burst_seconds = rate, burst_rate, burst_seconds
        self.limiter = (
            ReserveLimiter(rate, max(rate, burst_rate), burst_seconds) if rate > 0 else None
        )

    def reset(self) -> None:
        self.times: list[float] = []
        self.outcomes: list[str] = []  # the status answered to each request of ``times``
        self.statuses: Counter[str] = Counter()
        self.by_user: Counter[str] = Counter()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self._call)
        app.router.add_post(PATH + "/test", self._test)
        app.router.add_route("*", "/_sandbox/personalization", self._control)
        app.router.add_get("/_sandbox/personalization/requests", self._requests)
        app.router.add_post("/_sandbox/personalization/reset", self._reset)

    # ------------------------------------------------------------ the service

    async def _call(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, test=False)

    async def _test(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, test=True)

    def _error(self, status: int, message: str, retry_after: int | None = None) -> web.Response:
        self.statuses[str(status)] += 1
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return _json({"error": {"message": message}}, status, headers)

    async def _serve(self, request: web.Request, *, test: bool) -> web.StreamResponse:
        self.times.append(time.time())
        self.outcomes.append("pending")
        index = len(self.outcomes) - 1
        try:
            response = await self._respond(request, test=test)
        except BaseException:
            self.outcomes[index] = "reset"
            raise
        self.outcomes[index] = str(response.status)
        return response

    async def _respond(self, request: web.Request, *, test: bool) -> web.StreamResponse:
        started = time.monotonic()
        key = self.api_key if self.api_key is not None else self._default_key()
        if request.headers.get("Authorization", "") != f"TD1 {key}":
            return self._error(401, "Unauthorized: check the API key")
        segment, service = request.match_info["segment"], request.match_info["service"]
        if self.services and f"{segment}/{service}" not in self.services:
            return self._error(404, f"personalization service {service} not found in {segment}")
        if self.limiter is not None:
            wait = self.limiter.try_take(time.monotonic())
            if wait > 0:
                return self._error(429, "rate limit exceeded", max(1, math.ceil(wait)))
        failure = await self._fault(request)
        if failure is not None:
            return failure
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "body is not JSON")
        user = body.get("user_id") if isinstance(body, dict) else None
        if not isinstance(user, str) or not user:
            return self._error(400, "user_id is required")
        if test and not isinstance(body.get("input_params", {}), dict):
            return self._error(400, "input_params must be an object")
        self.by_user[user] += 1
        self.statuses["200"] += 1
        answer = self.profiles.answer(user)
        return _json(
            {
                "user_id": user,
                **answer,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "processing_time_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        fault = decide(faults, self._rng)
        if fault is None:
            return None
        if fault.kind == "hang":
            self.statuses["hang"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 3600)
            return web.Response(status=503)
        if fault.kind == "reset":
            self.statuses["reset"] += 1
            return self._reset_connection(request)
        assert fault.rule is not None
        rule = fault.rule
        retry_after = rule.retry_after_s
        if retry_after is None and rule.status in (429, 503):
            retry_after = 1
        return self._error(rule.status, "injected fault", retry_after)

    # ------------------------------------------------------------ control API

    def settings(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "services": self.services,
            "rate": self.rate,
            "burst_rate": self.burst_rate,
            "burst_seconds": self.burst_seconds,
            "faults": self.faults.to_json(),
        }

    async def _control(self, request: web.Request) -> web.Response:
        if request.method in ("PUT", "POST"):
            data = orjson.loads(await request.read() or b"{}")
            if not isinstance(data, dict):
                return _json({"error": "expected a JSON object"}, 400)
            try:
                if "faults" in data:
                    self.faults.update(data["faults"])
            except (ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, 400)
            if "api_key" in data:
                self.api_key = None if data["api_key"] is None else str(data["api_key"])
            if "services" in data:
                self.services = [str(s) for s in data["services"]]
            if {"rate", "burst_rate", "burst_seconds"} & set(data):
                self._set_limits(
                    float(data.get("rate", self.rate)),
                    float(data.get("burst_rate", self.burst_rate)),
                    float(data.get("burst_seconds", self.burst_seconds)),
                )
        return _json(self.settings())

    async def _requests(self, _request: web.Request) -> web.Response:
        return _json(
            {
                "times": self.times,
                "outcomes": self.outcomes,
                "statuses": dict(self.statuses),
                "by_user": dict(self.by_user),
            }
        )

    async def _reset(self, request: web.Request) -> web.Response:
        data = orjson.loads(await request.read() or b"{}")
        self.reset()
        if isinstance(data, dict) and data.get("faults"):
            self.faults = Faults()
        if isinstance(data, dict) and data.get("profiles"):
            self.profiles.reset()
        return _json({"reset": True})
