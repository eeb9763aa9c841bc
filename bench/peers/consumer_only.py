"""A consumer that only reads: the Kafka client's own cost per record, without the forwarder.

    python bench/peers/consumer_only.py CLIENT BOOTSTRAP TOPIC COUNT

CLIENT is ``aiokafka`` (the forwarder's client, with its fetch settings), ``confluent``
(confluent-kafka over librdkafka, each message turned into the record tuple an adapter would
hand the forwarder's core) or ``confluent-raw`` (the messages as they come). All three run in
an asyncio loop, as the forwarder does: confluent-kafka's blocking ``consume`` in a thread.
Each reads COUNT records from the start of TOPIC in a new consumer group, touching every
record's value and offset, then prints one JSON line: CPU seconds (user + system, every thread)
per million records and records/s while 10 % to 90 % of them were read, the CPU seconds before
the first record (start-up) and the peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

# The forwarder's fetch settings (forwarder/adapters/kafka_source.py, config defaults).
PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_BYTES = 16 * 1024 * 1024
FETCH_WAIT_MS = 100
MAX_RECORDS = 5_000


class Record(NamedTuple):
    """What the forwarder's core reads of a record (forwarder/core/records.py); also the
    records of ``bench/_confluent_consumer.py``."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Any


class Meter:
    """CPU and wall time at the first record and at 10 % and 90 % of ``count``."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0
        self.marks: dict[str, tuple[float, float, int]] = {}

    def add(self, records: int) -> bool:
        if records and not self.marks:
            self._mark("first")
        self.read += records
        if "low" not in self.marks and self.read >= self.count * 0.1:
            self._mark("low")
        if "high" not in self.marks and self.read >= self.count * 0.9:
            self._mark("high")
        return self.read >= self.count

    def _mark(self, name: str) -> None:
        self.marks[name] = (time.monotonic(), time.process_time(), self.read)

    def report(self, client: str) -> dict[str, Any]:
        (t0, c0, n0), (t1, c1, n1) = self.marks["low"], self.marks["high"]
        return {
            "client": client,
            "cpu_s_per_million_steady": (c1 - c0) / (n1 - n0) * 1e6,
            "records_per_s": (n1 - n0) / (t1 - t0),
            "startup_cpu_s": self.marks["first"][1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


async def with_aiokafka(bootstrap: str, topic: str, meter: Meter) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"only-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=MAX_RECORDS,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES,
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    touched = 0
    try:
        done = False
        while not done:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            for records in batches.values():
                for record in records:
                    touched += len(record.value) + (record.offset & 1)
                done = meter.add(len(records)) or done
    finally:
        await consumer.stop()
    return touched


async def with_confluent(bootstrap: str, topic: str, meter: Meter, wrap: bool) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"only-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.partition.fetch.bytes": PARTITION_FETCH_BYTES,
            "fetch.max.bytes": FETCH_BYTES,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            # librdkafka prefetches up to 64 MB per partition by default; the forwarder's
            # aiokafka holds one fetch of at most fetch_max_bytes.
            "queued.max.messages.kbytes": FETCH_BYTES // 1024,
        }
    )
    consumer.subscribe([topic])
    new: Callable[..., Record] = tuple.__new__  # type: ignore[assignment]
    touched = 0
    try:
        done = False
        while not done:
            messages = await asyncio.to_thread(consumer.consume, 500, 1.0)
            if wrap:
                batches: dict[int, list[Record]] = {}
                for m in messages:
                    if m.error() is None:
                        record = new(
                            Record,
                            (
                                m.topic(),
                                m.partition(),
                                m.offset(),
                                m.timestamp()[1],
                                m.key(),
                                m.value(),
                                m.headers() or (),
                            ),
                        )
                        batches.setdefault(record.partition, []).append(record)
                for records in batches.values():
                    for record in records:
                        touched += len(record.value or b"") + (record.offset & 1)
                    done = meter.add(len(records)) or done
            else:
                read = 0
                for m in messages:
                    if m.error() is None:
                        touched += len(m.value()) + (m.offset() & 1)
                        read += 1
                done = meter.add(read) or done
    finally:
        await asyncio.to_thread(consumer.close)
    return touched


async def main(client: str, bootstrap: str, topic: str, count: int) -> None:
    meter = Meter(count)
    if client == "aiokafka":
        await with_aiokafka(bootstrap, topic, meter)
    elif client in ("confluent", "confluent-raw"):
        await with_confluent(bootstrap, topic, meter, wrap=client == "confluent")
    else:
        raise SystemExit(f"unknown client {client!r}: aiokafka, confluent or confluent-raw")
    print(json.dumps(meter.report(client)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
