"""The local Kafka launcher is a real broker: groups, commits, a three-node quorum surviving a crash."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from forwarder.localkafka import KafkaCluster, create_topic, wait_for_leaders


async def _consume_one(kafka: str, topic: str, group: str) -> tuple[int, bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = {}
        deadline = time.monotonic() + 30
        while not batches and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=1)
        assert batches, "no record within 30 s"
        ((tp, records),) = batches.items()
        await consumer.commit({tp: records[0].offset + 1})
        return records[0].offset, records[0].value
    finally:
        await consumer.stop()


async def test_committed_offset_survives_a_consumer_restart(kafka: str) -> None:
    topic = f"fixture-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for value in (b"first", b"second"):
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    group = f"g-{uuid.uuid4().hex[:8]}"
    assert await _consume_one(kafka, topic, group) == (0, b"first")
    # A new consumer in the same group resumes after the committed record.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 1
    finally:
        await consumer.stop()
    assert await _consume_one(kafka, topic, group) == (1, b"second")


async def _send_until_acked(
    producer: AIOKafkaProducer, topic: str, value: bytes, partition: int
) -> None:
    # A client's metadata can still name the dead node for a moment after the controller moved
    # leadership; a real producer retries, and so does this one, up to a deadline.
    deadline = time.monotonic() + 30
    while True:
        try:
            await producer.send_and_wait(topic, value, partition=partition)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await producer.client.force_metadata_update()
            await asyncio.sleep(0.2)


async def test_three_node_cluster_survives_a_killed_node() -> None:
    cluster = KafkaCluster(nodes=3)
    cluster.start()
    try:
        topic = "replicated"
        await create_topic(cluster.bootstrap_servers, topic, 3, replication=3)
        cluster.kill_node(2)
        live = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes[:2])
        await wait_for_leaders(live, topic, avoid={cluster.nodes[2].node_id})
        producer = AIOKafkaProducer(bootstrap_servers=live, acks="all", request_timeout_ms=10000)
        await producer.start()
        try:
            for index in range(30):
                await _send_until_acked(producer, topic, f"v{index}".encode(), index % 3)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=live, auto_offset_reset="earliest")
        await consumer.start()
        try:
            seen: set[bytes] = set()
            deadline = time.monotonic() + 30
            while len(seen) < 30 and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update(r.value for r in records)
            assert len(seen) == 30
        finally:
            await consumer.stop()
    finally:
        cluster.stop()
