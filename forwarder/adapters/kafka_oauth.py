"""OAUTHBEARER token providers for aiokafka: a token file, or an OIDC client-credentials grant.

aiokafka asks ``token()`` on every new connection. A failure becomes ``OAuthTokenError``, a
``KafkaError``, so that aiokafka treats it as a failed connection (it logs it and retries, and
start-up turns it into a message naming the key) rather than a crash.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import structlog
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from forwarder.config import KafkaConfig

# Fetch a new token this long before the old one expires (clock skew, slow brokers).
_EXPIRY_MARGIN_S = 30.0
_log = structlog.get_logger("forwarder.kafka_oauth")


class OAuthTokenError(KafkaConnectionError):  # type: ignore[misc]
    """No token could be had; the message names the config key (never the secret)."""


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """The token in a file, re-read whenever the file changes (a sidecar refreshes it)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    async def token(self) -> str:
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._token = self._path.read_text(encoding="utf-8").strip()
                self._stamp = stamp
        except OSError as exc:
            _log.error("kafka_oauth_token_failed", source="file", error=type(exc).__name__)
            raise OAuthTokenError(
                f"kafka.oauth_token_file: cannot read {str(self._path)!r}: {exc.strerror}"
            ) from None
        if not self._token:
            _log.error("kafka_oauth_token_failed", source="file", error="empty")
            raise OAuthTokenError(f"kafka.oauth_token_file: {str(self._path)!r} is empty")
        return self._token


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """An OIDC client-credentials grant (RFC 6749 4.4), the token cached until near expiry."""

    def __init__(self, config: KafkaConfig) -> None:
        self._url = config.oauth_token_url
        self._form = {"grant_type": "client_credentials"}
        if config.oauth_scope:
            self._form["scope"] = config.oauth_scope
        self._auth = (config.oauth_client_id, config.oauth_client_secret.reveal())
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:  # concurrent connections share one request
            if self._token and time.monotonic() < self._expires:
                return self._token
            self._token, lifetime = await self._fetch()
            self._expires = time.monotonic() + max(0.0, lifetime - _EXPIRY_MARGIN_S)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.post(self._url, data=self._form, auth=self._auth)
            body: Any = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            _log.error("kafka_oauth_token_failed", source="url", error=type(exc).__name__)
            raise OAuthTokenError(
                f"kafka.oauth_token_url: no token from {self._url}: {type(exc).__name__}"
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            _log.error("kafka_oauth_token_failed", source="url", status=response.status_code)
            raise OAuthTokenError(
                f"kafka.oauth_token_url: {self._url} answered {response.status_code} without "
                "an access_token (check kafka.oauth_client_id and the client secret)"
            )
        lifetime = body.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) else 300.0


def token_provider(config: KafkaConfig) -> AbstractTokenProvider:
    if config.oauth_token_file:
        return FileTokenProvider(config.oauth_token_file)
    return ClientCredentialsTokenProvider(config)
