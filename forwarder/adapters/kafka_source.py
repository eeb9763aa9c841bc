"""The Kafka consumer: a consumer group member with manual commits.

Thin over ``AIOKafkaConsumer``: start-up failures become ``FatalError``; a failed commit
becomes a ``CommitResult`` naming the error (the next commit, or the next owner of the
partition, covers it: at least once); a failed fetch or end-offset query is reported to
``report(operation, error)`` (counted and logged by the pipeline's ``KafkaErrors``) and
answered with nothing. Rebalance callbacks are forwarded to the pipeline.

The group timing: the coordinator expels a member whose heartbeats stop for
``session_timeout_ms`` (aiokafka heartbeats on during the revoke callback), and one that has not
rejoined ``kafka.rebalance_timeout_ms`` after a rebalance started: the pipeline's drain of
revoked partitions is bounded to fit inside it (``kafka.revoke_drain_ms``, checked at start-up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from forwarder.adapters.kafka_common import connection_kwargs
from forwarder.config import SESSION_TIMEOUT_MS, KafkaConfig
from forwarder.errors import FatalError
from forwarder.ports import COMMITTED, Callback, CommitResult

Report = Callable[[str, str], None]


def _ignore(_operation: str, _error: str) -> None:
    return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callback, on_assigned: Callback) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


class KafkaSource:
    def __init__(
        self, config: KafkaConfig, group_id: str | None = None, report: Report = _ignore
    ) -> None:
        self._report = report
        self._consumer = AIOKafkaConsumer(
            **connection_kwargs(config),
            group_id=group_id or config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=config.auto_offset_reset,
            max_poll_records=config.fetch_max_records,
            # Spread large backlogs evenly: a partition's fetch is capped so one hot
            # partition cannot starve the others in a getmany() call.
            max_partition_fetch_bytes=1024 * 1024,
            # Fetched bytes wait in memory until decoded: cap them (the default is 50 MB).
            fetch_max_bytes=16 * 1024 * 1024,
            fetch_max_wait_ms=100,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            rebalance_timeout_ms=config.rebalance_timeout_ms,
            heartbeat_interval_ms=1_000,
        )

    async def start(
        self, topics: Sequence[str], on_revoked: Callback, on_assigned: Callback
    ) -> None:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise FatalError(
                f"cannot reach Kafka at start-up: {type(exc).__name__}: {exc}"
            ) from None
        self._consumer.subscribe(list(topics), listener=_Listener(on_revoked, on_assigned))

    async def fetch(
        self, timeout_s: float, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        try:
            batches: dict[TopicPartition, list[ConsumerRecord]] = await self._consumer.getmany(
                timeout_ms=max(0, int(timeout_s * 1000)), max_records=max_records
            )
        except KafkaError as exc:
            # Transient: aiokafka reconnects by itself; the next fetch tries again.
            self._report("fetch", type(exc).__name__)
            return {}
        return batches

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def paused(self) -> set[TopicPartition]:
        return set(self._consumer.paused())

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        parts = [p for p in partitions if p in self._consumer.assignment()]
        if parts:
            self._consumer.pause(*parts)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        parts = [p for p in partitions if p in self._consumer.assignment()]
        if parts:
            self._consumer.resume(*parts)

    def highwater(self, partition: TopicPartition) -> int | None:
        """The log end offset seen in the last fetch response, or None before any."""
        value: int | None = self._consumer.highwater(partition)
        return value

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> CommitResult:
        if not offsets:
            return COMMITTED
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except KafkaError as exc:
            return CommitResult(False, type(exc).__name__)
        return COMMITTED

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            result: dict[TopicPartition, int] = await self._consumer.end_offsets(list(partitions))
        except KafkaError as exc:
            self._report("end_offsets", type(exc).__name__)
            return {}
        return result

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own cancellation (a shutdown step timed out)
            # aiokafka's fetcher re-raises the cancellation of its own fetch task when it is
            # closed mid-backoff (the broker is gone), skipping the client's close: finish it.
            self._report("stop", "CancelledError")
            await self._consumer._client.close()
