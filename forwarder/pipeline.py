"""The pipeline: the one orchestrator that wires the consumer, the core and the senders.

    KafkaSource --records--> Decoder --events--> Batcher --batches--> senders (Delivery)
         ^                      | failures                               |
         |                      v                                        v
      commit <------------ OffsetTracker <----- on_done(records) -- publisher / endpoint

One loop fetches records, decodes them, feeds the batcher, closes lingering batches, pauses
partitions with too many records pending (and resumes them), holds retry-tier partitions until
their head record is due, and commits periodically. ``max_in_flight`` sender tasks take closed
batches from a queue. Offsets are committed only up to the first record not yet done.

Stopping (``stop()``, SIGTERM) and rebalances drain the same way: stop fetching, close open
batches, wait (bounded by ``ops.shutdown_timeout_s``) for the records in flight, commit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from forwarder.adapters.http_sink import HttpSink, Transport
from forwarder.adapters.kafka_publisher import KafkaPublisher, ensure_topics
from forwarder.adapters.kafka_source import KafkaSource
from forwarder.config import Config
from forwarder.core.batcher import Batch, Batcher
from forwarder.core.classify import Policy, describe
from forwarder.core.decode import Decoder, Event, Validator
from forwarder.core.headers import NOT_BEFORE, Failure, attempts_of, header_value
from forwarder.core.offsets import OffsetTracker
from forwarder.core.records import RecordLike
from forwarder.core.topics import TopicMap
from forwarder.delivery import Delivery
from forwarder.metrics import Metrics
from forwarder.personalization import Activation

IDLE_FETCH_S = 0.1
# How often log end offsets are asked for: a paused partition gets no fetch responses, so its
# highwater would freeze while producers keep writing.
END_OFFSETS_EVERY_S = 5.0


class Pipeline:
    def __init__(
        self,
        config: Config,
        validator: Validator,
        *,
        policy: Policy | None = None,
        metrics: Metrics | None = None,
        transport: Transport = "aiohttp",
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.topics = TopicMap(config.kafka.topics, config.retry.tiers)
        self._log = structlog.get_logger("forwarder.pipeline")
        self._decoder = Decoder(validator, config.destination_for)
        self._batcher = Batcher(
            config.batch.max_events, config.batch.max_bytes, config.batch.linger_ms / 1000
        )
        self._tracker = OffsetTracker(config.kafka.max_pending_per_partition)
        self._source = KafkaSource(
            config.kafka, self.topics.consumed, self._on_revoked, self._on_assigned
        )
        self._publisher = KafkaPublisher(config.kafka)
        self._sink = HttpSink(config.endpoint, config.limits, transport)
        self.activation = Activation(config, self._publisher, self.metrics)
        self._delivery = Delivery(
            self._sink,
            self._publisher,
            self.topics,
            policy or Policy.from_config(config.policy),
            config.retry,
            self.metrics,
            self._records_done,
            random.Random(),
            on_accepted=self.activation.offer,
        )
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._senders: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._backpressured: set[TopicPartition] = set()
        self._held: dict[TopicPartition, float] = {}  # tier partitions held until a due time
        self._log_ends: dict[TopicPartition, int] = {}
        self._log_ends_due = 0.0
        self._started = False
        self._joined = False

    # ----------------------------------------------------------------- lifecycle

    def readiness(self) -> tuple[bool, str]:
        """Ready: joined the group, producer up, not paused on an endpoint fault; else why not."""
        if self._stopping.is_set():
            return False, "stopping"
        if not self._started:
            return False, "starting: connecting to Kafka"
        if not self._joined:
            return False, "waiting for a partition assignment"
        cause = self._delivery.pause_cause
        if cause is not None:
            return False, f"paused: {describe(cause.status, cause.code)}"
        return True, "ready" + self.activation.readiness_note()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            await ensure_topics(self.config.kafka, self.topics.sources, self.topics.suffixes)
            await self._publisher.start()
            await self._source.start()
            await self.activation.start()
        except BaseException:
            await self._publisher.stop()
            await self._source.stop()
            await self._sink.aclose()
            raise
        self._started = True
        self._senders = [
            asyncio.create_task(self._sender()) for _ in range(self.config.limits.max_in_flight)
        ]
        self._log.info(
            "pipeline_started", topics=self.topics.consumed, group_id=self.config.kafka.group_id
        )
        try:
            await self._loop()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._log.info("pipeline_stopping")
        drained = await self._drain(self._tracker.partitions)
        await self._commit()
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        await self._source.stop()
        await self.activation.stop()
        await self._publisher.stop()
        for task in list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        await self._sink.aclose()
        self._log.info("pipeline_stopped", drained=drained)

    # ----------------------------------------------------------------- main loop

    async def _loop(self) -> None:
        commit_every = self.config.kafka.commit_interval_ms / 1000
        next_commit = time.monotonic() + commit_every
        max_records = self.config.kafka.fetch_max_records
        while not self._stopping.is_set():
            now = time.monotonic()
            due = self._batcher.next_due()
            timeout = IDLE_FETCH_S if due is None else min(IDLE_FETCH_S, max(0.0, due - now))
            fetched = await self._source.fetch(timeout, max_records)
            now = time.monotonic()
            for tp, records in fetched.items():
                self._take(tp, records, now)
            for batch in self._batcher.due(now):
                self._queue.put_nowait(batch)
            self._flow_control(now)
            if now >= next_commit:
                next_commit = now + commit_every
                await self._commit()
                self._observe_lag(now)

    def _take(self, tp: TopicPartition, records: list[ConsumerRecord], now: float) -> None:
        role = self.topics.role(tp.topic)
        if role.tier:
            records = self._due_records(tp, records)
        self._tracker.add_all(tp, records, int(time.time() * 1000))
        self.metrics.consumed.labels(role.source).inc(len(records))
        decode = self._decoder.decode
        add = self._batcher.add
        put = self._queue.put_nowait
        for record in records:
            outcome = decode(record)
            if isinstance(outcome, Event):
                for batch in add(outcome, now):
                    put(batch)
            else:
                self._spawn(self._dead_letter(record, outcome))

    def _due_records(
        self, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> list[ConsumerRecord]:
        """A retry tier's records up to the first one not yet due (it is held, see below)."""
        for index, record in enumerate(records):
            if self._hold_if_early(tp, record):
                return records[:index]  # the rest come again once the partition is due
        return records

    def _hold_if_early(self, tp: TopicPartition, record: ConsumerRecord) -> bool:
        """A tier record not yet due: rewind to it and pause its partition until it is."""
        raw = header_value(record.headers, NOT_BEFORE) if record.headers else None
        try:
            due_ms = int(raw) if raw else 0
        except ValueError:
            due_ms = 0
        wait_s = due_ms / 1000 - time.time()
        if wait_s <= 0:
            return False
        self._source.seek(tp, record.offset)
        self._source.pause([tp])
        self._held[tp] = time.monotonic() + wait_s
        return True

    async def _dead_letter(self, record: RecordLike, failure: Failure) -> None:
        await self._delivery.dead_letter(record, failure, attempts_of(record), None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _sender(self) -> None:
        while True:
            batch = await self._queue.get()
            self.metrics.in_flight.inc()
            try:
                await self._delivery.send(batch.destination, batch.events)
            except Exception:  # a bug: log loudly; the records stay pending, so nothing is lost
                self._log.exception(
                    "delivery_failed", destination=batch.destination, events=len(batch)
                )
            finally:
                self.metrics.in_flight.dec()
                self._queue.task_done()

    def _records_done(self, records: Sequence[RecordLike]) -> None:
        # A plain tuple hashes and compares equal to aiokafka's TopicPartition (a namedtuple),
        # and is cheaper to build once per event.
        done = self._tracker.done
        for record in records:
            done((record.topic, record.partition), record.offset)

    def _flow_control(self, now: float) -> None:
        assigned = self._source.assignment()
        if self._delivery.paused:
            self._source.pause(assigned)
            return
        over = {tp for tp in self._tracker.over_limit() if tp in assigned}
        newly = over - self._backpressured
        if newly:
            self._source.pause(newly)
            self._backpressured |= newly
        release = self._tracker.under_resume_mark(self._backpressured)
        self._backpressured -= release
        due = {tp for tp, until in self._held.items() if until <= now}
        for tp in due:
            del self._held[tp]
        held = set(self._held)
        self._source.resume((assigned - self._backpressured - held) & self._source.paused())

    async def _commit(self) -> None:
        offsets = self._tracker.to_commit()
        if not offsets:
            return
        started = time.monotonic()
        if await self._source.commit(offsets):
            self._tracker.mark_committed(offsets)
            self.metrics.commit_seconds.observe(time.monotonic() - started)

    def _observe_lag(self, now: float) -> None:
        """Lag per partition (log end minus the next offset to commit) and the oldest age."""
        assigned = self._source.assignment()
        if now >= self._log_ends_due and assigned:
            self._log_ends_due = now + END_OFFSETS_EVERY_S
            self._spawn(self._refresh_log_ends(assigned))
        for tp in assigned:
            ends = (self._source.highwater(tp), self._log_ends.get(tp))
            known = [end for end in ends if end is not None]
            position = self._tracker.committable(tp)
            if known and position is not None:
                lag = max(0, max(known) - position)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        oldest = self._tracker.oldest_pending_timestamp_ms()
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
        self.metrics.oldest_pending_age.set(age)

    async def _refresh_log_ends(self, partitions: set[TopicPartition]) -> None:
        self._log_ends.update(await self._source.end_offsets(sorted(partitions)))

    # ----------------------------------------------------------------- rebalance and drain

    async def _drain(self, partitions: Iterable[object]) -> bool:
        """Send what is batched and wait, bounded, until these partitions have nothing pending."""
        for batch in self._batcher.drain():
            self._queue.put_nowait(batch)
        watched = list(partitions)
        deadline = time.monotonic() + self.config.ops.shutdown_timeout_s
        while any(self._tracker.pending(p) for p in watched):
            if time.monotonic() >= deadline:
                self._log.warning(
                    "drain_timed_out",
                    pending=sum(self._tracker.pending(p) for p in watched),
                    note="uncommitted records will be delivered again, with the same uuid",
                )
                return False
            await asyncio.sleep(0.02)
        return True

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        await self._drain(revoked)
        await self._commit()
        self._tracker.forget(revoked)
        self._backpressured -= revoked
        for tp in revoked:
            self._held.pop(tp, None)
            self._log_ends.pop(tp, None)
            # A partition another replica now owns is its lag to report, not ours.
            self.metrics.lag.remove(tp.topic, str(tp.partition))
        self._log.info(
            "partitions_revoked", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in revoked)
        )

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._joined = True
        self._log.info(
            "partitions_assigned",
            partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned),
        )
