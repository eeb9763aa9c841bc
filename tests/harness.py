"""The real ``Pipeline`` over the in-memory fakes, in virtual time: a whole forwarder in a test.

Everything but Kafka and HTTP is the production code: decoding with the bundled schemas,
batching, the delivery, the endpoint health, the offset tracker, the tier schedule.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson

from forwarder.commands.traffic import TrafficGenerator
from forwarder.config import Config, load_config
from forwarder.core.headers import header_value
from forwarder.core.schemas import SchemaRegistry, default_schema_dir
from forwarder.core.topics import TopicMap
from forwarder.engine.pipeline import Adapters, Pipeline
from tests.fakes import (
    FakeBroker,
    FakeEndpoint,
    FakePublisher,
    FakeRecord,
    FakeSource,
    Identity,
    VirtualTimeLoop,
    identity_of,
)

REGISTRY = SchemaRegistry.from_dirs([default_schema_dir()])
TOPIC = "clicks"
# Wall-clock seconds at virtual loop time 0: the tier headers hold epoch milliseconds.
EPOCH = 1_780_000_000.0


async def _nothing() -> None:
    return None


def _topics_of(broker: FakeBroker) -> Any:
    async def topics() -> list[str]:
        return sorted(broker.topics)

    return topics


def harness_config(**overrides: Any) -> Config:
    env = {
        "TD_API_KEY": "1/test-key",
        "TD_WP13N_TOKEN": "1/1/test-token",
        "FORWARDER_KAFKA__TOPICS": TOPIC,
        "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "50",
        "FORWARDER_LIMITS__BURST": "20",
        "FORWARDER_BATCH__MAX_EVENTS": "20",
        "FORWARDER_BATCH__LINGER_MS": "50",
        "FORWARDER_RETRY__ATTEMPTS": "3",
        "FORWARDER_RETRY__BACKOFF_INITIAL_MS": "100",
        "FORWARDER_RETRY__BACKOFF_MAX_MS": "1000",
        "FORWARDER_RETRY__TIERS": "2,5,10",
        "FORWARDER_KAFKA__MAX_PENDING_PER_PARTITION": "200",
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        env[f"FORWARDER_{section.upper()}__{name.upper()}"] = str(value)
    return load_config(None, env)


class Harness:
    def __init__(
        self, seed: int = 0, endpoint: FakeEndpoint | None = None, **overrides: Any
    ) -> None:
        self.loop = VirtualTimeLoop()
        self.broker = FakeBroker(partitions=3)
        self.endpoint = endpoint or FakeEndpoint()
        self.publisher = FakePublisher(self.broker)
        self.source = FakeSource(self.broker)
        self.config = harness_config(**overrides)
        self.topics = TopicMap(self.config.kafka.topics, self.config.retry.tiers)
        self.pipeline = Pipeline(
            self.config,
            REGISTRY,
            adapters=Adapters(
                self.source, self.endpoint, self.publisher, _nothing, _topics_of(self.broker)
            ),
            rng=random.Random(seed),
            wall_clock=lambda: EPOCH + self.loop.time(),
        )
        self._traffic = TrafficGenerator(seed=seed, run_id=f"r{seed}")
        self.produced: dict[Identity, str | None] = {}  # identity -> event_id (None: malformed)
        self.poison: set[str] = set()
        self.produced_at: dict[str, float] = {}  # event_id -> loop time it was produced
        self.event_types: dict[str, str] = {}  # event_id -> event_type
        self._next_partition = 0
        self.task: asyncio.Task[None] | None = None

    # -- driving

    def start(self) -> None:
        self.task = self.loop.create_task(self.pipeline.run())
        self.run_for(0.01)

    def run_for(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))
        if self.task is not None and self.task.done():
            self.task.result()
            raise AssertionError("the pipeline stopped on its own")

    def run_until(self, condition: Any, timeout: float, what: str, step: float = 0.5) -> float:
        """Run until ``condition()``; return the virtual seconds it took."""
        started = self.loop.time()
        while not condition():
            if self.loop.time() - started > timeout:
                raise AssertionError(f"not within {timeout} virtual seconds: {what}")
            self.run_for(step)
        return self.loop.time() - started

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.pipeline.stop()
            self.loop.run_until_complete(asyncio.wait_for(self.task, 600))
        self.loop.close()

    def readiness(self) -> tuple[bool, str]:
        return self.pipeline.readiness()

    # -- traffic

    def produce(
        self,
        count: int,
        *,
        poison_every: int = 0,
        malformed_every: int = 0,
        size: int = 0,
        failing_every: int = 0,
    ) -> None:
        """``count`` events, round robin over the partitions; ``size``: padded to that many
        bytes; every ``failing_every``-th answered 500 by the endpoint, whatever the batch."""
        for _ in range(count):
            index = len(self.produced)
            event: dict[str, Any] = self._traffic.valid(now=EPOCH + self.loop.time())
            if size:
                event["note"] = "x" * max(0, size - len(orjson.dumps(event)) - 10)
            if malformed_every and index % malformed_every == malformed_every - 1:
                value, event_id = b'{"event_type": "page_view", ', None
            else:
                if poison_every and index % poison_every == poison_every - 1:
                    event["poison"] = True
                    self.poison.add(event["event_id"])
                elif failing_every and index % failing_every == failing_every - 1:
                    self.endpoint.failing_ids.add(event["event_id"])
                value, event_id = orjson.dumps(event), event["event_id"]
                self.produced_at[event_id] = self.loop.time()
                self.event_types[event_id] = event["event_type"]
            partition = self._next_partition
            self._next_partition = (partition + 1) % self.broker.partitions
            stamp = int((EPOCH + self.loop.time()) * 1000)
            record = self.broker.append(TOPIC, partition, b"user", value, (), stamp)
            self.produced[(record.topic, record.partition, record.offset)] = event_id

    def produce_value(self, value: bytes, partition: int = 0, event_id: str | None = None) -> None:
        """One record of these bytes (``event_id``: the one it carries, if it is to be delivered)."""
        stamp = int((EPOCH + self.loop.time()) * 1000)
        record = self.broker.append(TOPIC, partition, b"user", value, (), stamp)
        self.produced[(record.topic, record.partition, record.offset)] = event_id

    # -- what happened

    def dead_letters(self) -> list[FakeRecord]:
        return self.broker.records(self.topics.dlq_for(TOPIC))

    def dead_letter_reasons(self) -> dict[Identity, str]:
        reasons = {}
        for record in self.dead_letters():
            reason = header_value(record.headers, "forwarder.error.reason") or b""
            reasons[identity_of(record)] = reason.decode()
        return reasons

    def delivered(self) -> set[Identity]:
        ids = {event_id: identity for identity, event_id in self.produced.items() if event_id}
        return {ids[event_id] for event_id in self.endpoint.accepted}

    def all_finished(self) -> bool:
        done = self.delivered() | set(self.dead_letter_reasons())
        return len(done) == len(self.produced) and self.all_committed()

    def all_committed(self) -> bool:
        from aiokafka import TopicPartition

        for topic, logs in self.broker.topics.items():
            if topic.endswith(".dlq"):
                continue
            for partition, log in enumerate(logs):
                if self.broker.committed.get(TopicPartition(topic, partition), 0) != len(log):
                    return False
        return True
