"""Connection settings shared by the consumer, the producer and the admin client."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from forwarder.config import KafkaConfig


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
