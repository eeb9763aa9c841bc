"""A dead letter too large for its dead-letter topic, on the real broker (issue 27 item 1).

A producer that compresses (zstd) writes a 2 MB event into a source topic that allows 4 MB
records; the dead-letter topic already exists with the broker's default max.message.bytes
(1,048,588), which start-up accepts. The event is too large for the endpoint, and its dead
letter too large for the topic: the forwarder used to retry that write for ever while every
partition stopped. Now every other event is forwarded, the dead letter is written cut with
headers saying so, ``dlq stats`` counts it, and ``dlq replay`` re-sends the original, read
again from the source.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from forwarder.core.fitting import record_size
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import (
    ForwarderProcess,
    env_for,
    forwarder_cli,
    headers_of,
    read_all,
    wait_delivered,
    wait_for,
)

KAFKA_DEFAULT = 1_048_588


def _event(index: int, note: str = "") -> dict[str, Any]:
    return {
        "event_id": f"big-test-{index}",
        "event_type": "page_view",
        "user_id": f"user-{index % 7}",
        "timestamp": "2026-12-01T00:00:00Z",
        "page_url": f"https://shop.example/p/{index}",
        **({"note": note} if note else {}),
    }


async def _produce(kafka: str, topic: str, values: list[bytes]) -> None:
    """As a producer that compresses: zstd, so a 2 MB event passes a topic's size check."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka, compression_type="zstd", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"user")
    finally:
        await producer.stop()


async def test_a_2mb_event_is_dead_lettered_cut_and_replayed_from_its_source(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    topic = f"big-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1, configs={"max.message.bytes": str(4 * 1024 * 1024)})
    await create_topic(kafka, f"{topic}.dlq", 1)  # the broker's default limit
    # Random bytes in base64: about 1.5 MB even compressed, so the dead letter must be cut.
    note = base64.b64encode(os.urandom(1_500_000)).decode()
    big = orjson.dumps(_event(20, note))
    assert len(big) > 2_000_000
    await _produce(kafka, topic, [orjson.dumps(_event(i)) for i in range(20)] + [big])
    await _produce(kafka, topic, [orjson.dumps(_event(i)) for i in range(21, 41)])

    env = env_for(kafka, topic, sandbox.url)
    forwarder = ForwarderProcess(env, tmp_path / "forwarder.log")
    try:
        await wait_delivered(sandbox.url, 40, 90, "every other event forwarded")

        async def dead_lettered() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) == 1

        await wait_for(dead_lettered, 60, "the dead letter written")
        (letter,) = await read_all(kafka, f"{topic}.dlq")
        headers = headers_of(letter)
        assert record_size(letter.key, letter.value, letter.headers) <= KAFKA_DEFAULT
        assert big.startswith(letter.value) and len(letter.value) > 1_000_000
        assert headers["forwarder.error.reason"] == "too_large"
        assert headers["forwarder.value.truncated"] == "true"
        assert headers["forwarder.value.original_bytes"] == str(len(big))
        assert headers["forwarder.value.sha256"] == hashlib.sha256(big).hexdigest()
        assert headers["forwarder.original.topic"] == topic
        assert headers["forwarder.original.offset"] == "20"
        # Reading goes on: nothing stopped on that record.
        await _produce(kafka, topic, [orjson.dumps(_event(i)) for i in range(41, 51)])
        await wait_delivered(sandbox.url, 50, 60, "events produced after it forwarded")
        forwarder.signal(signal.SIGTERM)
        assert await forwarder.wait(60) == 0
    finally:
        forwarder.ensure_dead()
    log = forwarder.output()
    assert "record_fitted" in log and "MessageSizeTooLargeError" not in log, log[-3000:]

    code, out, err = await forwarder_cli(env, "dlq", "stats", "--json")
    assert code == 0, err
    stats = orjson.loads(out)[f"{topic}.dlq"]
    assert (stats["total"], stats["truncated"], stats["groups"][0]["truncated"]) == (1, 1, 1)

    code, out, err = await forwarder_cli(env, "dlq", "replay", "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert (summary["replayed"], summary["skipped"]) == (1, {}), summary
    replayed = (await read_all(kafka, topic))[-1]
    assert replayed.offset == 51 and replayed.value == big, "the original, not the cut value"
    assert headers_of(replayed)["forwarder.original.offset"] == "20"
