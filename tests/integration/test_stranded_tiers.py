"""Records parked on a retry tier that a shorter ``retry.tiers`` no longer names are still
delivered (issue 12 item 8), found on a real broker's topic list."""

from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaProducer

from forwarder.commands.traffic import TrafficGenerator
from forwarder.core.headers import retry_headers
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import REGISTRY, config_for, running, sandbox_uuids, uuid_of, wait_delivered


class _Parked:
    """Where a parked event first came from, for its retry headers."""

    def __init__(self, topic: str, offset: int) -> None:
        self.topic, self.partition, self.offset, self.timestamp = topic, 0, offset, 0
        self.headers: list[tuple[str, bytes]] = []


async def test_events_parked_on_a_tier_beyond_the_configured_count_are_delivered(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    stranded = f"{topic}.retry.3"  # parked while retry.tiers had 3 tiers; now it has 1
    await create_topic(kafka, stranded, 3)
    generator = TrafficGenerator(seed=12, run_id=topic)
    events = [generator.valid() for _ in range(20)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for offset, event in enumerate(events):
            headers = retry_headers(
                _Parked(topic, offset),  # type: ignore[arg-type]
                attempts=3,
                not_before_ms=int(time.time() * 1000),
            )
            await producer.send_and_wait(stranded, orjson.dumps(event), headers=headers)
    finally:
        await producer.stop()
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url, retry__tiers="5"), REGISTRY)
    assert stranded not in pipeline.topics.consumed
    async with running(pipeline):
        await wait_delivered(sandbox.url, 20, 60, "the stranded tier's events delivered")
        assert stranded in pipeline.topics.consumed
    assert set(await sandbox_uuids(sandbox.url)) == {uuid_of(e["event_id"]) for e in events}
