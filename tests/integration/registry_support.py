"""Helpers of the schema registry tests: Confluent's own serializer, an endpoint that keeps the
events it receives, and a TCP relay in front of the registry that can be switched off."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from forwarder.localkafka import free_port

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class Serializer:
    """Confluent's JSON Schema serializer (registers the schema under ``<topic>-value``), the
    code a registry-aware producer runs; ``validate=False`` lets a bad event through."""

    def __init__(
        self,
        registry_url: str,
        topic: str,
        schema: dict[str, Any],
        references: Sequence[tuple[str, str, int]] = (),
        validate: bool = True,
    ) -> None:
        refs = [SchemaReference(name, subject, version) for name, subject, version in references]
        self._schema = Schema(json.dumps(schema), "JSON", refs)
        self._url = registry_url
        self._validate = validate
        self._context = SerializationContext(topic, MessageField.VALUE)

    def _serialize_all(self, events: Sequence[dict[str, Any]]) -> list[bytes]:
        # A client per call, closed after it: registering again is idempotent (same id).
        client = SchemaRegistryClient({"url": self._url})
        try:
            serializer = JSONSerializer(self._schema, client, conf={"validate": self._validate})
            values = [serializer(event, self._context) for event in events]
        finally:
            client.close()
        assert all(value is not None for value in values)
        return values  # type: ignore[return-value]

    async def serialize(self, events: Sequence[dict[str, Any]]) -> list[bytes]:
        """Off the event loop: the serializer registers the schema over HTTP."""
        return await asyncio.to_thread(self._serialize_all, events)


def register(registry_url: str, subject: str, schema: dict[str, Any]) -> tuple[int, int]:
    """Register a schema with Confluent's client: (id, version)."""
    client = SchemaRegistryClient({"url": registry_url})
    try:
        schema_id = client.register_schema(subject, Schema(json.dumps(schema), "JSON"))
        version = client.lookup_schema(subject, Schema(json.dumps(schema), "JSON")).version
    finally:
        client.close()
    assert version is not None
    return schema_id, version


async def produce_values(
    kafka: str, topic: str, values: Sequence[bytes], partition: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=b"user-%d" % i, partition=partition)
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Capture:
    """A destination that accepts every request and keeps the events as it received them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.url = ""

    async def _accept(self, request: web.Request) -> web.Response:
        self.events.extend(orjson.loads(await request.read())["events"])
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def capturing() -> AsyncIterator[Capture]:
    capture = Capture()
    app = web.Application()
    app.router.add_post("/{database}/{table}", capture._accept)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    capture.url = f"http://127.0.0.1:{port}"
    try:
        yield capture
    finally:
        await runner.cleanup()


class Relay:
    """A TCP relay to the registry: ``stop`` closes its port and every connection through it,
    so the forwarder meets a registry that is down (refused), while the real one keeps what
    was registered (its storage is in memory)."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._connections):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._connections |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._connections -= {writer, up_writer}
