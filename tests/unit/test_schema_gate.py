"""The pipeline with a schema registry, on the in-memory fakes in virtual time: partitions that
need an unknown schema id wait for it, nothing is dead-lettered while the registry fails,
cached ids keep flowing, an id the registry does not know is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import random

import orjson
from aiokafka import TopicPartition

from forwarder.commands.traffic import TrafficGenerator
from forwarder.core.framing import frame
from forwarder.core.headers import header_value
from forwarder.core.writer_schemas import FetchedSchema
from forwarder.engine.pipeline import Adapters, Pipeline
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaLookup, SchemaMissing
from tests.harness import EPOCH, REGISTRY, TOPIC, Harness

WRITER = json.dumps(
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["event_id", "event_type"],
    }
)


class FakeRegistry:
    """Knows ``ids``; while ``down``, every lookup fails as a refused connection would."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids
        self.down = False
        self.calls: list[int] = []

    async def fetch(self, schema_id: int) -> SchemaLookup:
        self.calls.append(schema_id)
        await asyncio.sleep(0.01)
        if self.down:
            return RegistryUnavailable(
                "connection", f"ConnectError asking for schema id {schema_id}"
            )
        if schema_id in self.ids:
            return SchemaFound(FetchedSchema("JSON", WRITER))
        return SchemaMissing(f"schema id {schema_id} is not in the registry (404, error 40403)")

    async def aclose(self) -> None:
        return None


async def _nothing() -> None:
    return None


def _harness(registry: FakeRegistry) -> Harness:
    h = Harness(seed=3, registry__url="http://127.0.0.1:8081", registry__backoff_max_s=4)
    h.pipeline = Pipeline(
        h.config,
        REGISTRY,
        adapters=Adapters(h.source, h.endpoint, h.publisher, _nothing, registry=registry),
        rng=random.Random(3),
        wall_clock=lambda: EPOCH + h.loop.time(),
    )
    return h


def _produce(h: Harness, partition: int, count: int, schema_id: int | None) -> list[bytes]:
    """``count`` valid events on ``partition``, framed with ``schema_id`` (None: bare)."""
    generator = TrafficGenerator(seed=len(h.produced), run_id=f"p{partition}-{len(h.produced)}")
    values = []
    for _ in range(count):
        event = generator.valid(now=EPOCH + h.loop.time())
        raw = orjson.dumps(event)
        value = frame(schema_id, raw) if schema_id is not None else raw
        record = h.broker.append(TOPIC, partition, b"u", value, (), int(EPOCH * 1000))
        h.produced[(record.topic, record.partition, record.offset)] = event["event_id"]
        values.append(value)
    return values


def _delivered_on(h: Harness, partition: int) -> int:
    return sum(1 for identity in h.delivered() if identity[1] == partition)


def _gauge(h: Harness, name: str) -> float:
    value = h.pipeline.metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_a_partition_waits_for_a_failing_registry_and_nothing_is_dead_lettered() -> None:
    registry = FakeRegistry({7})
    registry.down = True
    h = _harness(registry)
    try:
        _produce(h, 0, 10, None)  # bare events before the framed ones: they go on
        _produce(h, 0, 30, 7)
        _produce(h, 1, 30, None)
        h.start()
        h.run_for(20)
        assert _delivered_on(h, 1) == 30
        assert _delivered_on(h, 0) == 10
        assert h.dead_letters() == []
        # Nothing past the first waiting record is committed.
        assert h.broker.committed.get(TopicPartition(TOPIC, 0)) == 10
        ready, detail = h.readiness()
        assert not ready
        assert detail.startswith("schema registry unavailable for ")
        assert "ConnectError" in detail and "1 partition(s) wait for schema ids 7" in detail
        assert _gauge(h, "forwarder_registry_waiting_partitions") == 1
        assert _gauge(h, "forwarder_registry_unavailable") == 1
        # Backoff 1, 2, 4, 4... s, one lookup for the 30 records: not one per record or fetch.
        assert 4 <= len(registry.calls) <= 8, registry.calls
        registry.down = False
        h.run_until(h.all_finished, 30, "every event delivered once the registry is back")
        assert h.dead_letters() == []
        assert h.readiness() == (True, "ready")
        assert _gauge(h, "forwarder_registry_waiting_partitions") == 0
        assert _gauge(h, "forwarder_registry_unavailable") == 0
        assert _gauge(h, "forwarder_registry_schemas_cached") == 1
    finally:
        h.stop()


def test_cached_ids_keep_flowing_while_a_new_id_waits() -> None:
    registry = FakeRegistry({7, 8})
    h = _harness(registry)
    try:
        _produce(h, 0, 5, 7)
        h.start()
        h.run_until(lambda: _delivered_on(h, 0) == 5, 10, "id 7 looked up and its events sent")
        registry.down = True
        _produce(h, 0, 5, 8)  # a new id: its partition waits
        _produce(h, 1, 20, 7)  # a cached id, another partition: flows
        h.run_for(10)
        assert _delivered_on(h, 1) == 20
        assert _delivered_on(h, 0) == 5
        assert h.dead_letters() == []
        registry.down = False
        h.run_until(h.all_finished, 30, "the waiting partition delivered")
        assert sorted(set(registry.calls)) == [7, 8]
    finally:
        h.stop()


def test_an_id_the_registry_does_not_know_is_dead_lettered_with_the_framed_bytes() -> None:
    registry = FakeRegistry({7})
    h = _harness(registry)
    try:
        _produce(h, 0, 3, 7)
        unknown = _produce(h, 0, 2, 99)
        _produce(h, 0, 3, None)
        h.start()
        h.run_until(h.all_finished, 30, "every event delivered or dead-lettered")
        letters = h.dead_letters()
        assert sorted(r.value for r in letters) == sorted(unknown)  # as the producer wrote them
        for letter in letters:
            assert header_value(letter.headers, "forwarder.error.reason") == b"unknown_schema"
            detail = header_value(letter.headers, "forwarder.error.detail") or b""
            assert b"schema id 99" in detail
        assert _delivered_on(h, 0) == 6
        assert h.readiness()[0]
    finally:
        h.stop()
