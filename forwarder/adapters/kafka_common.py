"""Connection settings shared by the consumer, the producer and the admin client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from forwarder.config import KafkaConfig
from forwarder.errors import FatalError


def connection_kwargs(config: KafkaConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(cafile=config.ssl_cafile or None)
    if config.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = config.sasl_mechanism
        kwargs["sasl_plain_username"] = config.sasl_username
        kwargs["sasl_plain_password"] = config.sasl_password.reveal()
    return kwargs


@contextlib.asynccontextmanager
async def open_admin(config: KafkaConfig) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed after; ``FatalError`` when Kafka cannot be reached."""
    admin = AIOKafkaAdminClient(**connection_kwargs(config))
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise FatalError(f"cannot reach Kafka at start-up: {type(exc).__name__}: {exc}") from None
    try:
        yield admin
    finally:
        await admin.close()
