"""``forwarder validate``: check a file of events, bare JSON or framed, as the forwarder would.

One value per line; a framed value (``forwarder.core.framing``) keeps its 5-byte header whole,
whatever its bytes. With ``registry.url`` set, the schema ids of the framed values are looked
up first (each once), then every value is checked by the same core code the pipeline runs:
a framed one by its writer schema (and the local one with ``registry.local_schemas``), a bare
one by the local schemas. Without it, framed values are unwrapped and checked against the
local schemas only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from forwarder.adapters.registry_client import RegistryClient
from forwarder.config import Config
from forwarder.core.framing import HEADER_BYTES, MAGIC, schema_id_of, split_framed_lines
from forwarder.core.schemas import LineFailure, SchemaRegistry, default_schema_dir, validate_values
from forwarder.core.writer_schemas import WriterSchemas
from forwarder.errors import FatalError
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaSource


def local_schemas(config: Config, extra: Path | None) -> SchemaRegistry:
    dirs = [default_schema_dir()]
    dirs += [Path(config.schemas.dir)] if config.schemas.dir else []
    return SchemaRegistry.from_dirs([*dirs, *([extra] if extra else [])])


async def _look_up(ids: set[int], writers: WriterSchemas, client: SchemaSource, url: str) -> None:
    try:
        for schema_id in sorted(ids):
            outcome = await client.fetch(schema_id)
            if isinstance(outcome, RegistryUnavailable):
                raise FatalError(
                    f"the schema registry at {url} (registry.url) cannot be asked: {outcome.detail}"
                )
            if isinstance(outcome, SchemaFound):
                writers.learn(schema_id, outcome.schema, "", 0.0)
            else:
                writers.learn(schema_id, None, outcome.detail, 0.0)
    finally:
        await client.aclose()


def validate_file(
    data: bytes,
    config: Config,
    extra_schemas: Path | None = None,
    client: SchemaSource | None = None,
) -> tuple[int, Sequence[LineFailure]]:
    """(values checked, failures); ``client`` defaults to one for ``registry.url``."""
    local = local_schemas(config, extra_schemas)
    values = list(split_framed_lines(data))
    registry = config.registry
    writers = WriterSchemas(
        local,
        registry=bool(registry.url),
        local_schemas=registry.local_schemas,
        routes=config.routes,
    )
    ids = {
        schema_id_of(value)
        for _, value in values
        if value[:1] == MAGIC and len(value) >= HEADER_BYTES
    }
    if registry.url and ids:
        asyncio.run(_look_up(ids, writers, client or RegistryClient(registry), registry.url))
    return len(values), list(validate_values(values, local, writers))
