"""Start-up checks of the retry and dead-letter topics against a real broker."""

from __future__ import annotations

import uuid

from forwarder.adapters.kafka_publisher import MIN_MESSAGE_BYTES, ensure_topics
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import config_for, env_for, forwarder_cli


async def test_a_dead_letter_topic_too_small_for_the_largest_event_stops_start_up(
    kafka: str, sandbox: RunningSandbox
) -> None:
    topic = f"m-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 2)
    await create_topic(kafka, f"{topic}.dlq", 2, configs={"max.message.bytes": "500000"})
    code, _out, output = await forwarder_cli(env_for(kafka, topic, sandbox.url), "run", timeout=60)
    assert code == 2, output
    assert "Traceback" not in output
    line = next(x for x in output.splitlines() if x.startswith("error:"))
    assert f"{topic}.dlq (500000)" in line and "max.message.bytes" in line, line
    assert f"{topic}.retry" not in line, "the retry topics it created itself are fine"


async def test_topics_at_the_broker_default_size_pass_the_check(kafka: str) -> None:
    topic = f"d-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1)
    await create_topic(kafka, f"{topic}.dlq", 1)  # the broker's default: 1,048,588
    await create_topic(
        kafka, f"{topic}.retry.1", 1, configs={"max.message.bytes": str(MIN_MESSAGE_BYTES)}
    )
    config = config_for(kafka, topic, "http://127.0.0.1:9", retry__tiers="5,30")
    created = await ensure_topics(config.kafka, [topic], [".retry.1", ".retry.2", ".dlq"])
    assert created == [f"{topic}.retry.2"]
