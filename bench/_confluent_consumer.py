"""``forwarder`` with its consumer replaced by one over confluent-kafka: an experiment, not a mode.

    .venv/bin/python bench/bench_pair.py --baseline HEAD --candidate-entry bench/_confluent_consumer.py

``bench_consumers.py`` found librdkafka's consumer to spend 0.6 of aiokafka's CPU per record
when reading only. This asks whether the forwarder would gain as much: the ``Source`` protocol
(``forwarder/ports.py``) over confluent-kafka's ``Consumer``, its blocking ``consume`` run in a
thread, each message turned into a record tuple for the core, the rebalance callbacks handed to
the event loop. Plaintext only (no TLS, no SASL), no translation of start-up errors beyond
"cannot reach Kafka": enough for the benchmark's run, not for production. confluent-kafka is
not a dependency of the project: it comes from the peers' virtual environment
(``bench_peers.peers_python``), made on first use.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.bench_peers import PEERS_VENV, peers_python
from bench.peers.consumer_only import (
    FETCH_BYTES,
    FETCH_WAIT_MS,
    PARTITION_FETCH_BYTES,
    Record,
)

peers_python()
# Appended, not prepended: the project's own packages keep precedence; only confluent_kafka is
# found there.
sys.path.extend(
    str(p)
    for p in PEERS_VENV.glob("lib/python*/site-packages")
    if str(p) not in sys.path and p.is_dir()
)

from aiokafka import TopicPartition  # noqa: E402
from confluent_kafka import Consumer, KafkaException  # noqa: E402
from confluent_kafka import TopicPartition as CkPartition  # noqa: E402

from forwarder.adapters.kafka_source import Report, _ignore  # noqa: E402
from forwarder.config import SESSION_TIMEOUT_MS, KafkaConfig  # noqa: E402
from forwarder.errors import FatalError  # noqa: E402
from forwarder.ports import COMMITTED, Callback, CommitResult  # noqa: E402

_new = tuple.__new__


class ConfluentSource:
    def __init__(
        self, config: KafkaConfig, group_id: str | None = None, report: Report = _ignore
    ) -> None:
        self._report = report
        self._consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": group_id or config.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": config.auto_offset_reset,
                "max.partition.fetch.bytes": PARTITION_FETCH_BYTES,
                "fetch.max.bytes": FETCH_BYTES,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
                "queued.max.messages.kbytes": FETCH_BYTES // 1024,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "max.poll.interval.ms": max(config.rebalance_timeout_ms, 60_000),
                "heartbeat.interval.ms": 1_000,
            }
        )
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()

    async def start(
        self, topics: Sequence[str], on_revoked: Callback, on_assigned: Callback
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._consumer.list_topics, timeout=10)
        except KafkaException as exc:
            raise FatalError(f"cannot reach Kafka at start-up: {exc}") from None

        def assigned(_c: Any, parts: list[CkPartition]) -> None:
            tps = {TopicPartition(p.topic, p.partition) for p in parts}
            self._assigned |= tps
            asyncio.run_coroutine_threadsafe(on_assigned(tps), loop).result()

        def revoked(_c: Any, parts: list[CkPartition]) -> None:
            tps = {TopicPartition(p.topic, p.partition) for p in parts}
            asyncio.run_coroutine_threadsafe(on_revoked(tps), loop).result()
            self._assigned -= tps
            self._paused -= tps

        self._consumer.subscribe(
            list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked
        )

    async def fetch(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        try:
            messages = await asyncio.to_thread(
                self._consumer.consume, max_records, max(timeout_s, 0.0)
            )
        except KafkaException as exc:
            self._report("fetch", type(exc).__name__)
            return {}
        batches: dict[tuple[str, int], list[Record]] = {}
        new = _new
        for m in messages:
            if m.error() is not None:
                self._report("fetch", "KafkaError")
                continue
            topic, partition = m.topic(), m.partition()
            record = new(
                Record,
                (
                    topic,
                    partition,
                    m.offset(),
                    m.timestamp()[1],
                    m.key(),
                    m.value(),
                    m.headers() or (),
                ),
            )
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[(topic, partition)] = []
            batch.append(record)
        return {TopicPartition(t, p): rs for (t, p), rs in batches.items()}

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        parts = [p for p in partitions if p in self._assigned]
        if parts:
            self._consumer.pause([CkPartition(p.topic, p.partition) for p in parts])
            self._paused.update(parts)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        parts = [p for p in partitions if p in self._assigned]
        if parts:
            self._consumer.resume([CkPartition(p.topic, p.partition) for p in parts])
            self._paused.difference_update(parts)

    def highwater(self, partition: TopicPartition) -> int | None:
        try:
            _, high = self._consumer.get_watermark_offsets(
                CkPartition(partition.topic, partition.partition), cached=True
            )
        except KafkaException as exc:
            self._report("highwater", type(exc).__name__)
            return None
        return high if high >= 0 else None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(CkPartition(partition.topic, partition.partition, offset))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> CommitResult:
        if not offsets:
            return COMMITTED
        parts = [CkPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        try:
            await asyncio.to_thread(self._consumer.commit, offsets=parts, asynchronous=False)
        except KafkaException as exc:
            return CommitResult(False, type(exc).__name__)
        return COMMITTED

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        def ends() -> dict[TopicPartition, int]:
            return {
                tp: self._consumer.get_watermark_offsets(
                    CkPartition(tp.topic, tp.partition), timeout=5
                )[1]
                for tp in partitions
            }

        try:
            return await asyncio.to_thread(ends)
        except KafkaException as exc:
            self._report("end_offsets", type(exc).__name__)
            return {}

    async def stop(self) -> None:
        await asyncio.to_thread(self._consumer.close)


if __name__ == "__main__":
    from forwarder.adapters import bundle

    bundle.KafkaSource = ConfluentSource  # type: ignore[misc,assignment]
    from forwarder.cli import main

    main()
