"""The HTTP client of one personalization service: one call in, a ``CallResult`` out.

httpx API over the ``httpx-aiohttp`` transport, as the ingest sink (``http_sink.py``). Any
exception of httpx, aiohttp or the socket layer becomes ``CallResult(transport_error=...)``,
naming the kind (``timeout``, ``connection``) and the exception type, never a header.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from forwarder.adapters.http_sink import retry_after_of, trust
from forwarder.config import PersonalizationService, Secret
from forwarder.telemetry.retry_after_report import Report, ignore

MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class CallResult:
    status: int | None = None
    body: bytes = b""
    retry_after_s: float | None = None
    elapsed_s: float = 0.0
    transport_error: str | None = None  # "timeout: ReadTimeout", "connection: ..."


def transport_error(exc: BaseException) -> str:
    """``timeout: <type>`` or ``connection: <type>``, from the root cause.

    httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` (a reset, a disconnect) to
    ``httpx.ConnectTimeout``, so the exception it chained from decides, not the type it raised.
    """
    if isinstance(exc, TimeoutError):  # ours (asyncio.timeout), chained from a cancellation
        return f"timeout: {type(exc).__name__}"
    root = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
    timed_out = isinstance(root, TimeoutError) or (
        root is exc and isinstance(exc, httpx.TimeoutException)
    )
    return f"{'timeout' if timed_out else 'connection'}: {type(root).__name__}"


class PersonalizationClient:
    def __init__(
        self, service: PersonalizationService, api_key: Secret, report: Report = ignore
    ) -> None:
        pool = httpx.Limits(
            max_connections=service.max_in_flight,
            max_keepalive_connections=service.max_in_flight,
        )
        self._client = httpx.AsyncClient(
            base_url=service.base_url,
            headers={
                "Authorization": f"TD1 {api_key.reveal()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(service.timeout_s),
            transport=AiohttpTransport(
                limits=pool,
                verify=trust(service.ca_file),
                proxy=httpx.Proxy(service.proxy) if service.proxy else None,
            ),
        )
        self._path = service.path
        self._timeout_s = service.timeout_s
        self._name = service.name
        self._report = report

    async def call(self, body: dict[str, Any], *, test: bool = False) -> CallResult:
        """POST the body to the service (``/test`` with ``test``); never raises on I/O."""
        path = f"{self._path}/test" if test else self._path
        started = time.monotonic()
        try:
            # httpx's timeout covers each phase; this one bounds the whole exchange.
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(path, content=orjson.dumps(body))
                content = await response.aread()
        except (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            return CallResult(
                transport_error=transport_error(exc), elapsed_s=time.monotonic() - started
            )
        return CallResult(
            status=response.status_code,
            body=content[:MAX_BODY_BYTES],
            retry_after_s=retry_after_of(response.headers, self._name, self._report),
            elapsed_s=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
