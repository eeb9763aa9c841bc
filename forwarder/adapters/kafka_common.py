"""Connection settings shared by the consumer, the producer and the admin client.

A certificate, key or CA file that cannot be loaded stops start-up with a ``ConfigError`` naming
its key, before any client exists.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from forwarder.adapters.kafka_oauth import token_provider
from forwarder.config import KafkaConfig
from forwarder.errors import ConfigError, FatalError


def ssl_context(config: KafkaConfig) -> ssl.SSLContext:
    """A client TLS context: the CA bundle (else the system's), a client certificate if any."""
    try:
        context = ssl.create_default_context(cafile=config.ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "kafka.ssl_cafile",
            f"cannot load {config.ssl_cafile!r}: {exc}",
            "point it at a PEM file of CA certificates",
        ) from None
    # Off only for test set-ups: without it any certificate the CA signed is accepted.
    context.check_hostname = config.ssl_check_hostname
    if config.ssl_certfile:
        # Always a password (maybe empty): with none, OpenSSL would prompt on the terminal.
        password = config.ssl_key_password.reveal()
        try:
            context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile or None, password)
        except ssl.SSLError as exc:
            encrypted = "decrypt" in str(exc) or "password" in str(exc).lower()
            key = "kafka.ssl_key_password" if encrypted else "kafka.ssl_keyfile"
            raise ConfigError(
                key,
                f"cannot load the client key of {config.ssl_certfile!r}: {exc.reason or exc}",
                "check ssl_certfile, ssl_keyfile and FORWARDER_KAFKA__SSL_KEY_PASSWORD",
            ) from None
        except OSError as exc:
            raise ConfigError(
                "kafka.ssl_certfile", f"cannot load it: {exc.strerror}", "check the path"
            ) from None
    return context


def connection_kwargs(config: KafkaConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(config)
    if config.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = config.sasl_mechanism
        if config.sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = token_provider(config)
        else:
            kwargs["sasl_plain_username"] = config.sasl_username
            kwargs["sasl_plain_password"] = config.sasl_password.reveal()
    return kwargs


@contextlib.asynccontextmanager
async def open_admin(config: KafkaConfig) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed after; a one-line error naming the key when it cannot start."""
    # Imported here: kafka_diagnose builds its test connection from this module.
    from forwarder.adapters.kafka_diagnose import startup_error

    admin = AIOKafkaAdminClient(**connection_kwargs(config))
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise await startup_error(config, exc) from None
    try:
        yield admin
    finally:
        await admin.close()


async def list_topics(config: KafkaConfig) -> list[str]:
    """Every topic name on the cluster (the stranded retry tiers are found among them)."""
    async with open_admin(config) as admin:
        try:
            return sorted(await admin.list_topics())
        except KafkaError as exc:
            raise FatalError(f"cannot list the topics on Kafka: {type(exc).__name__}") from None
