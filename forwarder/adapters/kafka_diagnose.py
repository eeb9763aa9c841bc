"""Why a Kafka client could not start: one connection attempt, its failure named by config key.

aiokafka's bootstrap logs each failed attempt and then raises "Unable to bootstrap from ...",
which does not say whether the password, the CA or the host name was wrong. When a client fails
at start-up, ``startup_error`` opens one connection to the first bootstrap server itself, with
the same settings, and turns what fails into a ``ConfigError`` naming the key to fix.
"""

from __future__ import annotations

import asyncio
import ssl

import structlog
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from forwarder.adapters.kafka_common import connection_kwargs
from forwarder.adapters.kafka_oauth import OAuthTokenError
from forwarder.config import KafkaConfig
from forwarder.errors import ConfigError, FatalError, ForwarderError

_log = structlog.get_logger("forwarder.kafka")


def _credentials_key(config: KafkaConfig) -> tuple[str, str]:
    if config.sasl_mechanism == "OAUTHBEARER":
        source = "oauth_token_file" if config.oauth_token_file else "oauth_token_url"
        return (
            f"kafka.{source}",
            "the broker refused the token; check its issuer, audience and expiry",
        )
    return (
        "kafka.sasl_password",
        f"check kafka.sasl_username ({config.sasl_username!r}) and FORWARDER_KAFKA__SASL_PASSWORD",
    )


def explain(config: KafkaConfig, address: str, exc: BaseException) -> ForwarderError:
    """The config key and fix for the failure ``exc`` of one connection to ``address``."""
    tls = config.security_protocol in ("SSL", "SASL_SSL")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        if "mismatch" in reason:
            return ConfigError(
                "kafka.bootstrap_servers",
                f"the broker's certificate at {address} does not name that host ({reason})",
                "connect by a name the certificate lists; kafka.ssl_check_hostname = false "
                "only for tests",
            )
        return ConfigError(
            "kafka.ssl_cafile",
            f"the broker's certificate at {address} is not trusted ({reason})",
            "set ssl_cafile to the PEM of the CA that signed the broker certificates",
        )
    if isinstance(exc, SaslAuthenticationFailed):
        key, fix = _credentials_key(config)
        return ConfigError(key, f"authentication failed at {address}: {exc}", fix)
    if isinstance(exc, UnsupportedSaslMechanismError):
        return ConfigError("kafka.sasl_mechanism", str(exc), "use one the broker enables")
    if isinstance(exc, OAuthTokenError):
        # KafkaError's str() prefixes the class name; the message itself is "key: problem".
        key, _, problem = str(exc.args[0]).partition(": ")
        return ConfigError(key, problem)
    if isinstance(exc, ConnectionRefusedError | asyncio.TimeoutError | TimeoutError):
        return FatalError(
            f"cannot reach Kafka at {address} ({type(exc).__name__}); "
            "check kafka.bootstrap_servers and that the broker is up"
        )
    if isinstance(exc, OSError | KafkaConnectionError):
        # The broker closed the connection before any answer: a protocol that does not match
        # the listener, or (mutual TLS) no client certificate the broker accepts.
        if config.security_protocol == "SSL" and not config.ssl_certfile:
            return ConfigError(
                "kafka.ssl_certfile",
                f"the broker at {address} closed the TLS connection",
                "it may require a client certificate (mutual TLS): set ssl_certfile and "
                "ssl_keyfile; else check kafka.security_protocol",
            )
        return ConfigError(
            "kafka.security_protocol",
            f"the broker at {address} closed the connection ({type(exc).__name__})",
            f"{config.security_protocol} may not be what this listener speaks"
            + ("; or it rejected the client certificate" if tls and config.ssl_certfile else ""),
        )
    return FatalError(f"cannot connect to Kafka at {address}: {type(exc).__name__}: {exc}")


async def startup_error(config: KafkaConfig, original: KafkaError) -> ForwarderError:
    """What to tell the operator when a client failed to start with ``original``."""
    address = config.bootstrap_servers.split(",")[0].strip()
    host, _, port = address.rpartition(":")
    kwargs = connection_kwargs(config)
    del kwargs["bootstrap_servers"]
    try:
        connection = await create_conn(host, int(port), request_timeout_ms=10_000, **kwargs)
    except (OSError, KafkaError, TimeoutError) as exc:
        _log.error("kafka_start_failed", address=address, error=type(exc).__name__)
        return explain(config, address, exc)
    connection.close()
    # The first server answers: the failure was elsewhere (another server, a request).
    _log.error("kafka_start_failed", address=address, error=type(original).__name__)
    return FatalError(f"cannot start the Kafka client: {type(original).__name__}: {original}")
