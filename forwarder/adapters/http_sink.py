"""The HTTP sink: posts one request body to one destination and returns a ``SendResult``.

The endpoint's shared limits (the in-flight cap and the token bucket) are not here but in
``forwarder.engine.limiter``, in front of any ``Sink``; this adapter only sizes its connection pool.

It speaks the httpx API over the ``httpx-aiohttp`` transport: on loopback with 250 KB bodies
httpx's own pool managed about a quarter of the requests per second at 8 in flight
(encode/httpx#3215; ``bench/ab/bench_transport.py`` measures both side by side).
Any exception of httpx, aiohttp or the socket layer becomes ``SendResult(transport_error=...)``;
the message names the exception type and the URL path, never a header.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from forwarder.config import EndpointConfig, LimitsConfig
from forwarder.core.backoff import read_retry_after
from forwarder.core.classify import SendResult
from forwarder.telemetry.retry_after_report import Report, ignore

_READ = httpx.ByteStream(b"")

CONTENT_TYPE = "application/vnd.treasuredata.v1+json"
Transport = Literal["aiohttp", "httpx"]


def _tls_hint(exc: BaseException | None) -> str:
    """Name the key to fix when the cause is an untrusted certificate (a re-signing proxy)."""
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            # aiohttp's subclass of it carries no verify_message of its own.
            reason = getattr(exc, "verify_message", None) or "verify failed"
            return f" (certificate: {reason}; see endpoint.ca_file)"
        exc = exc.__cause__ or exc.__context__
    return ""


def trust(ca_file: str) -> ssl.SSLContext | bool:
    """A private CA replaces the default trust store (an egress proxy re-signing TLS)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def retry_after_of(headers: httpx.Headers, source: str, report: Report) -> float | None:
    """The response's ``Retry-After`` in seconds; an unreadable one is reported, then ignored."""
    raw = headers.get("retry-after")
    seconds, unreadable = read_retry_after(raw, time.time())
    if unreadable and raw is not None:
        report(source, raw)
    return seconds


class HttpSink:
    def __init__(
        self,
        endpoint: EndpointConfig,
        limits: LimitsConfig,
        transport: Transport = "aiohttp",
        report: Report = ignore,
    ) -> None:
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Accept": CONTENT_TYPE,
            "Authorization": f"TD1 {endpoint.api_key.reveal()}",
        }
        if endpoint.profile == "realtime":
            headers["WP13n-Token"] = endpoint.wp13n_token.reveal()
        pool = httpx.Limits(
            max_connections=limits.in_flight_ceiling,
            max_keepalive_connections=limits.in_flight_ceiling,
        )
        timeout = httpx.Timeout(endpoint.timeout_s)
        # A private CA replaces the default trust store (an egress proxy re-signing TLS); the
        # proxy was resolved by the config (explicit, else HTTPS_PROXY/NO_PROXY).
        verify = trust(endpoint.ca_file)
        proxy = httpx.Proxy(endpoint.proxy) if endpoint.proxy else None
        chosen: httpx.AsyncBaseTransport = (
            AiohttpTransport(limits=pool, verify=verify, proxy=proxy)
            if transport == "aiohttp"
            else httpx.AsyncHTTPTransport(limits=pool, verify=verify, proxy=proxy)
        )
        self._client = httpx.AsyncClient(
            base_url=endpoint.base_url, headers=headers, timeout=timeout, transport=chosen
        )
        self._timeout_s = endpoint.timeout_s
        self._report = report

    async def send(self, destination: str, body: bytes) -> SendResult:
        database, _, table = destination.partition(".")
        path = f"/{database}/{table}"
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s + 1.0):
                response = await self._client.post(path, content=body)
                content = await response.aread()
        except (httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The type and the path only: exception texts may quote request details.
            return SendResult(
                transport_error=f"{type(exc).__name__} posting to {path}{_tls_hint(exc)}",
                elapsed_s=time.monotonic() - started,
            )
        retry_after = retry_after_of(response.headers, "endpoint", self._report)
        # httpx binds a response to its stream, which points back at it: a reference cycle
        # that keeps the request (and its body, up to 5 MB) alive until the cycle collector
        # runs. The body is read, so the stream can go: the pair is freed right here.
        response.stream = _READ
        return SendResult(
            status=response.status_code,
            body=content[:65536],
            retry_after_s=retry_after,
            elapsed_s=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
