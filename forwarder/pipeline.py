"""The pipeline: the one orchestrator that wires the consumer, the core and the senders.

    Source --records--> Decoder --events--> Batcher --batches--> senders (Delivery)
         ^                      | failures                               |
         |                      v                                        v
      commit <------------ OffsetTracker <----- on_done(records) -- publisher / endpoint

One loop fetches records, decodes them, feeds the batcher, closes lingering batches, pauses
partitions with too many records pending (and resumes them), holds retry-tier partitions until
their head record is due (``forwarder.core.tiers``), and commits periodically.
``max_in_flight`` sender tasks take closed batches from a queue. Offsets are committed only up
to the first record not yet done. While the endpoint is down or paused, or a retry or
dead-letter topic cannot be written at all, every partition is paused: batches already read
wait in memory, nothing new is read.

The adapters (``Source``, ``Sink``, ``Publisher`` of ``forwarder.ports``) are the real Kafka
and HTTP ones unless given: the tests pass in-memory fakes. Time is the event loop's.

Stopping (``stop()``, SIGTERM) and rebalances drain the same way: stop fetching, close open
batches, wait (bounded by ``ops.shutdown_timeout_s``) for the records in flight, commit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import TopicPartition

from forwarder.adapters.http_sink import HttpSink, Transport
from forwarder.adapters.kafka_publisher import KafkaPublisher, ensure_topics
from forwarder.adapters.kafka_source import KafkaSource
from forwarder.config import Config
from forwarder.core.batcher import Batch, Batcher
from forwarder.core.classify import Policy
from forwarder.core.decode import Decoder, Event, Validator
from forwarder.core.headers import Failure, attempts_of
from forwarder.core.health import EndpointHealth, HealthSettings, State
from forwarder.core.offsets import OffsetTracker
from forwarder.core.records import RecordLike
from forwarder.core.tiers import due_prefix
from forwarder.core.token_bucket import TokenBucket
from forwarder.core.topics import TopicMap
from forwarder.delivery import Delivery
from forwarder.limiter import Limiter
from forwarder.metrics import Metrics
from forwarder.personalization import Activation
from forwarder.ports import Publisher, Sink, Source

IDLE_FETCH_S = 0.1
# How often log end offsets are asked for: a paused partition gets no fetch responses, so its
# highwater would freeze while producers keep writing.
END_OFFSETS_EVERY_S = 5.0


@dataclass
class Adapters:
    """The I/O the pipeline drives; ``prepare`` creates the retry and dead-letter topics."""

    source: Source
    sink: Sink
    publisher: Publisher
    prepare: Callable[[], Awaitable[object]]

    @classmethod
    def real(cls, config: Config, topics: TopicMap, transport: Transport = "aiohttp") -> Adapters:
        return cls(
            KafkaSource(config.kafka),
            HttpSink(config.endpoint, config.limits, transport),
            KafkaPublisher(config.kafka),
            lambda: ensure_topics(config.kafka, topics.sources, topics.suffixes),
        )


class Pipeline:
    def __init__(
        self,
        config: Config,
        validator: Validator,
        *,
        policy: Policy | None = None,
        metrics: Metrics | None = None,
        transport: Transport = "aiohttp",
        adapters: Adapters | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.topics = TopicMap(config.kafka.topics, config.retry.tiers)
        self._log = structlog.get_logger("forwarder.pipeline")
        self._wall = wall_clock
        io = adapters or Adapters.real(config, self.topics, transport)
        self._prepare = io.prepare
        self._decoder = Decoder(validator, config.destination_for)
        self._batcher = Batcher(
            config.batch.max_events, config.batch.max_bytes, config.batch.linger_ms / 1000
        )
        self._tracker = OffsetTracker(config.kafka.max_pending_per_partition)
        self._source = io.source
        self._publisher = io.publisher
        self._sink = io.sink
        h = config.health
        self.health = EndpointHealth(
            HealthSettings(
                h.down_after_failures,
                h.down_after_s,
                h.probe_interval_s,
                h.probe_interval_max_s,
                h.ramp_s,
            ),
            config.limits.max_in_flight,
        )
        bucket = TokenBucket(config.limits.requests_per_second, config.limits.burst)
        self.activation = Activation(config, self._publisher, self.metrics)
        self._delivery = Delivery(
            self._sink,
            self._publisher,
            self.topics,
            policy or Policy.from_config(config.policy),
            config.retry,
            self.health,
            Limiter(bucket, self.health),
            self.metrics,
            self._records_done,
            probe_events=h.probe_events,
            rng=rng or random.Random(),
            wall_clock=wall_clock,
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
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- lifecycle

    def readiness(self) -> tuple[bool, str]:
        """Ready: joined the group, producer up, not paused on an endpoint fault; else why not."""
        if self._stopping.is_set():
            return False, "stopping"
        if not self._started:
            return False, "starting: connecting to Kafka"
        if not self._joined:
            return False, "waiting for a partition assignment"
        health = self.health
        if health.blocked:
            since = self._now() - (health.since or 0.0)
            what = "endpoint down" if health.state is State.DOWN else "paused"
            return (
                False,
                f"{what} for {since:.0f}s: {health.cause}; probing, nothing is dead-lettered",
            )
        unwritable = self._unwritable_topics()
        if unwritable:
            return False, "cannot write " + "; ".join(unwritable)
        return True, "ready" + self.activation.readiness_note()

    def _unwritable_topics(self) -> list[str]:
        """Retry or dead-letter topics that refuse writes, or have failed them for too long."""
        now = self._now()
        limit = self.config.health.publish_unready_after_s
        return [
            f"{topic} ({trouble.error}, for {now - trouble.since:.0f}s)"
            for topic, trouble in sorted(self._delivery.publish_trouble.items())
            if not trouble.retriable or now - trouble.since >= limit
        ]

    def _now(self) -> float:
        return self._event_loop.time() if self._event_loop is not None else time.monotonic()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        try:
            await self._prepare()
            await self._publisher.start()
            await self._source.start(self.topics.consumed, self._on_revoked, self._on_assigned)
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
        loop = asyncio.get_running_loop()
        commit_every = self.config.kafka.commit_interval_ms / 1000
        next_commit = loop.time() + commit_every
        max_records = self.config.kafka.fetch_max_records
        while not self._stopping.is_set():
            now = loop.time()
            due = self._batcher.next_due()
            timeout = IDLE_FETCH_S if due is None else min(IDLE_FETCH_S, max(0.0, due - now))
            fetched = await self._source.fetch(timeout, max_records)
            now = loop.time()
            for tp, records in fetched.items():
                self._take(tp, records, now)
            for batch in self._batcher.due(now):
                self._queue.put_nowait(batch)
            self._flow_control(now)
            if now >= next_commit:
                next_commit = now + commit_every
                await self._commit()
                self._observe_lag(now)

    def _take(self, tp: TopicPartition, records: Sequence[RecordLike], now: float) -> None:
        role = self.topics.role(tp.topic)
        if role.tier:
            records = self._due_records(tp, records, now)
        self._tracker.add_all(tp, records, int(self._wall() * 1000))
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
        self, tp: TopicPartition, records: Sequence[RecordLike], now: float
    ) -> Sequence[RecordLike]:
        """A retry tier's records up to the first one not yet due: rewind to that one and hold
        the partition (paused) until it is due; the rest come again then."""
        count, wait_s = due_prefix(records, int(self._wall() * 1000))
        if wait_s is not None:
            self._source.seek(tp, records[count].offset)
            self._source.pause([tp])
            self._held[tp] = now + wait_s
        return records[:count]

    async def _dead_letter(self, record: RecordLike, failure: Failure) -> None:
        await self._delivery.dead_letter(record, failure, attempts_of(record), None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: its records stay pending (never committed), so say so
            self.metrics.internal_errors.labels("side_task").inc()
            self._log.error(
                "task_failed",
                task=task.get_coro().__qualname__,  # type: ignore[union-attr]
                exc_info=exc,
                note="its records stay uncommitted and are delivered again after a restart",
            )

    async def _sender(self) -> None:
        while True:
            batch = await self._queue.get()
            self.metrics.in_flight.inc()
            try:
                await self._delivery.send(batch.destination, batch.events)
            except Exception:  # a bug: log loudly; the records stay pending, so nothing is lost
                self.metrics.internal_errors.labels("sender").inc()
                self._log.exception(
                    "delivery_failed",
                    destination=batch.destination,
                    events=len(batch),
                    note="these records stay uncommitted and are delivered again after a restart",
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
        if self.health.blocked or self._fatal_publish_trouble():
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

    def _fatal_publish_trouble(self) -> bool:
        """A retry or dead-letter topic refuses writes for good (not authorized, too large):
        reading more would only pile up records that cannot finish."""
        return any(not t.retriable for t in self._delivery.publish_trouble.values())

    async def _commit(self) -> None:
        offsets = self._tracker.to_commit()
        if not offsets:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        if await self._source.commit(offsets):
            self._tracker.mark_committed(offsets)
            self.metrics.commit_seconds.observe(loop.time() - started)

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
        age = 0.0 if oldest is None else max(0.0, self._wall() - oldest / 1000)
        self.metrics.oldest_pending_age.set(age)

    async def _refresh_log_ends(self, partitions: set[TopicPartition]) -> None:
        self._log_ends.update(await self._source.end_offsets(sorted(partitions)))

    # ----------------------------------------------------------------- rebalance and drain

    async def _drain(self, partitions: Iterable[object]) -> bool:
        """Send what is batched and wait, bounded, until these partitions have nothing pending."""
        for batch in self._batcher.drain():
            self._queue.put_nowait(batch)
        watched = list(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.ops.shutdown_timeout_s
        while any(self._tracker.pending(p) for p in watched):
            if loop.time() >= deadline:
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
