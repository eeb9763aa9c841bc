"""Start-up checks of the retry and dead-letter topics against a real broker."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from forwarder.adapters.kafka_publisher import MIN_MESSAGE_BYTES, ensure_topics
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import config_for, env_for


async def _run_forwarder(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "forwarder",
        "run",
        env={**os.environ, **env, "FORWARDER_OPS__PORT": "0", "FORWARDER_OPS__LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("forwarder run did not stop at start-up within 60 s") from None
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_dead_letter_topic_too_small_for_the_largest_event_stops_start_up(
    kafka: str, sandbox: RunningSandbox
) -> None:
    topic = f"m-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 2)
    await create_topic(kafka, f"{topic}.dlq", 2, configs={"max.message.bytes": "500000"})
    code, output = await _run_forwarder(env_for(kafka, topic, sandbox.url))
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
