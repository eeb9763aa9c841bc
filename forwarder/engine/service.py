"""``forwarder run``: load the configuration and schemas, start the pipeline, stop on a signal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from forwarder.adapters.ops_server import OpsServer
from forwarder.config import Config, load_config
from forwarder.core.schemas import SchemaRegistry, default_schema_dir
from forwarder.engine.pipeline import Pipeline
from forwarder.engine.runtime import allocator, python_allocator, tune_collector
from forwarder.engine.stop_signals import StopSignals
from forwarder.telemetry.kafka_errors import KafkaErrors
from forwarder.telemetry.logs import configure_logging


def load_registry(config: Config) -> SchemaRegistry:
    dirs = [default_schema_dir()]
    if config.schemas.dir:
        dirs.append(Path(config.schemas.dir))
    return SchemaRegistry.from_dirs(dirs)


def secrets_of(config: Config) -> list[str]:
    k = config.kafka
    values = [
        config.endpoint.api_key,
        config.endpoint.wp13n_token,
        k.sasl_password,
        k.ssl_key_password,
        k.oauth_client_secret,
        config.personalization.api_key,
        config.registry.password,
    ]
    return [s.reveal() for s in values if s]


ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]
_UNRETRIEVED = "exception was never retrieved"


def unretrieved_connection_errors(errors: KafkaErrors) -> ExceptionHandler:
    """The event loop's handler for exceptions no task retrieved.

    A connection that breaks can leave its error in a future nobody awaits any more: with TLS,
    asyncio's stream protocol keeps it, and which of the two the collector frees first decides
    whether asyncio prints "Future exception was never retrieved" with a traceback (seen when
    a broker refuses the handshake at start-up, already reported by then). Such a connection
    error (an ``OSError``) is counted in ``forwarder_kafka_errors_total{operation="connection"}``
    and logged as one ``kafka_error`` line; anything else keeps asyncio's report, traceback
    included: it may be a bug.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and _UNRETRIEVED in str(context.get("message", "")):
            errors.report("connection", type(exc).__name__, detail=str(exc))
            return
        loop.default_exception_handler(context)

    return handle


async def run_pipeline(
    config: Config, registry: SchemaRegistry, signals: StopSignals | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then drain and exit."""
    signals = signals or StopSignals()
    pipeline = Pipeline(config, registry)  # aiokafka clients need the running loop
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(unretrieved_connection_errors(pipeline.kafka_errors))
    signals.attach(loop, pipeline.stop)
    ops = OpsServer(pipeline.metrics.registry, pipeline.readiness)
    await ops.start(pipeline.config.ops.host, pipeline.config.ops.port)
    try:
        await pipeline.run()
    finally:
        await ops.stop()
        signals.detach(loop)


def run(config_path: str | None, signals: StopSignals | None = None) -> None:
    """``forwarder run``; ``signals`` were installed by the caller before anything was read."""
    signals = signals or StopSignals().install()
    config = load_config(config_path)
    tune_collector()
    configure_logging(config.ops.log_level, config.ops.log_format, secrets_of(config))
    registry = load_registry(config)
    log = structlog.get_logger("forwarder")
    if signals.received is not None:
        log.info("stopped_before_start", signal=signals.name, note="nothing was read from Kafka")
        return
    log.info(
        "starting",
        event_types=registry.event_types,
        endpoint=config.endpoint.base_url,
        profile=config.endpoint.profile,
        schema_registry=config.registry.url or None,
        allocator=allocator(),
        python_allocator=python_allocator(os.environ),
    )
    asyncio.run(run_pipeline(config, registry, signals))
