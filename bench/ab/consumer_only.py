"""A consumer that only reads: the Kafka client's own cost per record, without the forwarder.

    .venv/bin/python bench/ab/consumer_only.py BOOTSTRAP TOPIC COUNT

aiokafka with the forwarder's fetch settings, in an asyncio loop as the forwarder runs it. It
reads COUNT records from the start of TOPIC in a new consumer group, touching every record's
value and offset, then prints one JSON line: CPU seconds (user + system, every thread) per
million records and records/s while 10 % to 90 % of them were read, the CPU seconds before the
first record (start-up) and the peak RSS. Run as its own process by ``bench_consumers.py``, so
that its CPU and memory are the client's alone.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

# The forwarder's fetch settings (forwarder/adapters/kafka_source.py, config defaults).
PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_BYTES = 16 * 1024 * 1024
FETCH_WAIT_MS = 100
MAX_RECORDS = 5_000


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

    def report(self) -> dict[str, Any]:
        (t0, c0, n0), (t1, c1, n1) = self.marks["low"], self.marks["high"]
        return {
            "cpu_s_per_million_steady": (c1 - c0) / (n1 - n0) * 1e6,
            "records_per_s": (n1 - n0) / (t1 - t0),
            "startup_cpu_s": self.marks["first"][1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


async def read(bootstrap: str, topic: str, meter: Meter) -> int:
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


async def main(bootstrap: str, topic: str, count: int) -> None:
    meter = Meter(count)
    await read(bootstrap, topic, meter)
    print(json.dumps(meter.report()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
