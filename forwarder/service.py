"""``forwarder run``: load the configuration and schemas, start the pipeline, stop on a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog

from forwarder.config import Config, load_config
from forwarder.core.schemas import SchemaRegistry, default_schema_dir
from forwarder.logs import configure_logging
from forwarder.ops import OpsServer
from forwarder.pipeline import Pipeline


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
    ]
    return [s.reveal() for s in values if s]


async def run_pipeline(config: Config, registry: SchemaRegistry) -> None:
    """Run until SIGTERM or SIGINT, then drain and exit."""
    pipeline = Pipeline(config, registry)  # aiokafka clients need the running loop
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pipeline.stop)
    ops = OpsServer(pipeline.metrics.registry, pipeline.readiness)
    await ops.start(pipeline.config.ops.host, pipeline.config.ops.port)
    try:
        await pipeline.run()
    finally:
        await ops.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(config_path: str | None) -> None:
    config = load_config(config_path)
    configure_logging(config.ops.log_level, config.ops.log_format, secrets_of(config))
    registry = load_registry(config)
    structlog.get_logger("forwarder").info(
        "starting",
        event_types=registry.event_types,
        endpoint=config.endpoint.base_url,
        profile=config.endpoint.profile,
    )
    asyncio.run(run_pipeline(config, registry))
