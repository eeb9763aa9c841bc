"""The pipeline: the one orchestrator that wires the consumer, the core and the senders.

    Source --records--> Decoder --events--> Batcher --batches--> senders (Delivery)
         ^                      | failures                               |
         |                      v                                        v
      commit <------------ OffsetTracker <----- on_done(records) -- publisher / endpoint

One loop fetches records, decodes them, feeds the batcher, closes lingering batches, pauses
partitions with too many records pending or every partition while the pending records hold
``kafka.max_pending_bytes`` (and resumes them), and holds retry-tier partitions until their head
record is due (``forwarder.core.tiers``). It never waits on Kafka: the fetch runs as a task the
loop waits on for at most ``TICK_S`` (aiokafka's ``getmany`` can outlast its timeout during a
rebalance), and commits run in a task of their own (``forwarder.engine.committer``), so linger
deadlines and a stop are handled on time whatever the brokers do.
``max_in_flight`` sender tasks take closed batches from a queue. Offsets are committed only up
to the first record not yet done. While the endpoint is paused, or a retry or dead-letter topic
cannot be written at all, every partition is paused: batches already read wait in memory,
nothing new is read. While it is down, reading goes on up to the pending bounds, so that the
probes can rotate through what arrives.

A framed event whose schema id was never looked up stops its partition's decoding there: the
partition is rewound to it and waits for the lookup (``forwarder.engine.schema_gate``).

The adapters (``Source``, ``Sink``, ``Publisher`` of ``forwarder.ports``) are the real Kafka
and HTTP ones unless given: the tests pass in-memory fakes. Time is the event loop's.

Stopping (``stop()``, SIGTERM) and rebalances drain the same way: stop fetching, close open
batches, wait for the records in flight, commit. A stop is bounded as a whole by
``ops.shutdown_timeout_s`` (drain, final commit, leaving the group); the drain of revoked
partitions by ``kafka.revoke_drain_ms``, which start-up checks fits with the commit inside the
group's rebalance timeout; past it, their queued events are dropped (the new owner reads them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import structlog
from aiokafka import TopicPartition

from forwarder.adapters.bundle import Adapters
from forwarder.adapters.http_sink import Transport
from forwarder.config import REVOKE_COMMIT_MS, Config
from forwarder.core.batcher import Batch, Batcher
from forwarder.core.classify import Policy
from forwarder.core.concurrency import Concurrency, ConcurrencySettings
from forwarder.core.decode import Decoder, Event
from forwarder.core.framing import NOT_LOOKED_UP
from forwarder.core.headers import Failure, attempts_of
from forwarder.core.health import EndpointHealth, HealthSettings, State
from forwarder.core.offsets import OffsetTracker
from forwarder.core.records import RecordLike
from forwarder.core.schemas import SchemaRegistry
from forwarder.core.token_bucket import TokenBucket
from forwarder.core.topics import TopicMap
from forwarder.engine.committer import Committer
from forwarder.engine.delivery import Delivery
from forwarder.engine.flow import FlowControl
from forwarder.engine.lag import LagObserver
from forwarder.engine.limiter import Limiter
from forwarder.engine.personalization import Activation
from forwarder.engine.producer_watch import ProducerWatch
from forwarder.engine.readiness import endpoint_blocked, failing_note, unwritable_topics
from forwarder.engine.schema_gate import SchemaGate
from forwarder.engine.workers import Workers
from forwarder.ports import Publisher
from forwarder.telemetry.kafka_errors import KafkaErrors
from forwarder.telemetry.metrics import Metrics
from forwarder.telemetry.retry_after_report import RetryAfterReport

__all__ = ["Adapters", "Pipeline"]

IDLE_FETCH_S = 0.1
# The longest the loop waits for a fetch before it looks at lingering batches, held tier
# partitions and the clock again.
TICK_S = 0.5
# Of ops.shutdown_timeout_s, kept for the final commit and leaving the group after the drain.
CLOSE_RESERVE_S = 5.0


class Pipeline:
    def __init__(
        self,
        config: Config,
        validator: SchemaRegistry,
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
        self._log = structlog.get_logger("forwarder.engine.pipeline")
        self._wall = wall_clock
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self.kafka_errors = KafkaErrors(self.metrics, clock=self._now)
        io = adapters or Adapters.real(
            config,
            self.topics,
            transport,
            self.kafka_errors.report,
            RetryAfterReport(self.metrics, self._now),
        )
        self._prepare = io.prepare
        self._existing_topics = io.existing_topics
        self._batcher = Batcher(
            config.batch.max_events, config.batch.max_bytes, config.batch.linger_ms / 1000
        )
        self._tracker = OffsetTracker(
            config.kafka.max_pending_per_partition, config.kafka.max_pending_bytes
        )
        self._source = io.source
        self._committer = Committer(
            self._tracker, self._source, self.metrics, self.kafka_errors, self._now
        )
        # /readyz hears of a failing producer from the writes, not only from its timer.
        self._producer = ProducerWatch(io.publisher, lambda coro: self._spawn(coro), self._now)
        self._publisher: Publisher = self._producer
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
            config.limits.in_flight_ceiling,
        )
        bucket = TokenBucket(config.limits.requests_per_second, config.limits.burst)
        concurrency = (
            Concurrency(ConcurrencySettings(maximum=config.limits.adaptive_max), 0.0)
            if config.limits.adaptive
            else None
        )
        self.activation = Activation(config, self._publisher, self.metrics)
        self._delivery = Delivery(
            self._sink,
            self._publisher,
            self.topics,
            policy or Policy.from_config(config.policy),
            config.retry,
            self.health,
            Limiter(bucket, self.health, concurrency, self.metrics),
            self.metrics,
            self._records_done,
            probe_events=h.probe_events,
            destination_share=config.limits.destination_share,
            rng=rng or random.Random(),
            wall_clock=wall_clock,
            on_accepted=self.activation.offer,
        )
        self._workers = Workers(self._delivery, self.metrics)
        self._spawn = self._workers.spawn
        # Framed events' schema ids are looked up before those events are decoded.
        self._schemas = SchemaGate.of(config, validator, io, self.metrics, self._spawn, self._now)
        self._decoder = Decoder(validator, config.destination_for, self._schemas.writers)
        self._commits: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._flow = FlowControl(self._source, self._tracker, self.metrics)
        self._lag = LagObserver(self._source, self._tracker, self.metrics, wall_clock, self._spawn)
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
        now = self._now()
        blocked = endpoint_blocked(self.health, now)
        if blocked:
            return False, blocked
        unwritable = unwritable_topics(
            self._delivery.publish_trouble, now, self.config.health.publish_unready_after_s
        )
        if unwritable:
            return False, "cannot write " + "; ".join(unwritable)
        if self._producer.problem:
            return False, f"producer: {self._producer.problem}"
        registry = self._schemas.unready(now)
        if registry:
            return False, registry
        return True, "ready" + failing_note(self.health, now) + self.activation.readiness_note()

    def _now(self) -> float:
        return self._event_loop.time() if self._event_loop is not None else time.monotonic()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        try:
            await self._prepare()
            stranded = self.topics.adopt(await self._existing_topics())
            if stranded:
                self._log.warning(
                    "stranded_retry_tiers_drained",
                    topics=stranded,
                    note="tiers beyond retry.tiers: records are sent when due, then dead-lettered",
                )
            await self._publisher.start()
            await self._source.start(self.topics.consumed, self._on_revoked, self._on_assigned)
            await self.activation.start()
        except BaseException:
            await self._publisher.stop()
            await self._source.stop()
            await self._sink.aclose()
            raise
        self._started = True
        self._workers.start(self.config.limits.in_flight_ceiling)
        self._commits = asyncio.create_task(
            self._committer.run(self.config.kafka.commit_interval_ms / 1000)
        )
        self._log.info(
            "pipeline_started", topics=self.topics.consumed, group_id=self.config.kafka.group_id
        )
        try:
            await self._loop()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Drain, commit, leave the group: all of it within ``ops.shutdown_timeout_s``."""
        self._log.info("pipeline_stopping")
        loop = asyncio.get_running_loop()
        total = self.config.ops.shutdown_timeout_s
        deadline = loop.time() + total
        drained = await self._drain(
            self._tracker.partitions, total - min(CLOSE_RESERVE_S, total / 3)
        )
        await self._workers.stop_senders()
        if self._commits is not None:
            self._commits.cancel()
            await asyncio.gather(self._commits, return_exceptions=True)
        await self._committer.commit(max(0.1, (deadline - loop.time()) / 2), why="shutdown")
        await self._bounded("leave_group", self._source.stop(), deadline)
        await self._bounded("personalization_stop", self.activation.stop(), deadline)
        await self._bounded("producer_stop", self._publisher.stop(), deadline)
        await self._workers.stop_side_tasks()
        await self._schemas.aclose()
        await self._sink.aclose()
        self._log.info("pipeline_stopped", drained=drained)

    async def _bounded(self, what: str, step: Awaitable[None], deadline: float) -> None:
        """A shutdown step, given what is left of the shutdown time (at least 0.1 s)."""
        left = max(0.1, deadline - asyncio.get_running_loop().time())
        try:
            await asyncio.wait_for(step, left)
        except TimeoutError:  # a broker that does not answer: counted and logged
            self.kafka_errors.report(
                what,
                "Timeout",
                waited_s=round(left, 1),
                note="gave up to exit within ops.shutdown_timeout_s; nothing uncommitted is lost",
            )

    # ----------------------------------------------------------------- main loop

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        observe_every = self.config.kafka.commit_interval_ms / 1000
        next_observe = loop.time() + observe_every
        max_records = self.config.kafka.fetch_max_records
        stopping = asyncio.ensure_future(self._stopping.wait())
        fetch: asyncio.Future[Mapping[TopicPartition, Sequence[RecordLike]]] | None = None
        try:
            while not self._stopping.is_set():
                if fetch is None:
                    fetch = asyncio.ensure_future(self._source.fetch(IDLE_FETCH_S, max_records))
                wake = min([loop.time() + TICK_S, *self._deadlines()])
                await asyncio.wait(
                    (fetch, stopping),
                    timeout=max(0.0, wake - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                now = loop.time()
                if fetch.done():
                    fetched, fetch = fetch.result(), None
                    for tp, records in fetched.items():
                        self._take(tp, records, now)
                for batch in self._batcher.due(now):
                    self._submit(batch)
                self._flow.control(now, stop_all=self._stop_fetching(), hold=self._schemas.waiting)
                if now >= next_observe:
                    next_observe = now + observe_every
                    self._lag.observe(now)
                self._producer.poll(now)
        finally:
            # Records a cancelled fetch had read are not tracked, hence never committed.
            for future in (stopping, fetch):
                if future is not None:
                    future.cancel()
            await asyncio.gather(stopping, *([fetch] if fetch else []), return_exceptions=True)

    def _deadlines(self) -> list[float]:
        """When the loop must look again: the next lingering batch, the next held tier."""
        due = self._batcher.next_due()
        return [*([due] if due is not None else []), *self._flow.deadlines()]

    def _take(self, tp: TopicPartition, records: Sequence[RecordLike], now: float) -> None:
        if tp not in self._source.assignment():
            # Fetched just before a rebalance whose revoke ran before the loop got here: the
            # partition is another member's now, and it reads them from the last commit.
            # Tracked, they would make every later commit name a partition not ours.
            self.metrics.dropped_unassigned.labels(tp.topic).inc(len(records))
            self._log.info(
                "unassigned_records_dropped",
                partition=f"{tp.topic}-{tp.partition}",
                records=len(records),
            )
            return
        role = self.topics.role(tp.topic)
        if role.tier:
            records = self._flow.due_records(tp, records, now, int(self._wall() * 1000))
        records = self._schemas.admit(tp, records, now)
        decode = self._decoder.decode
        events: list[Event] = []
        keep = events.append
        failed: list[tuple[RecordLike, Failure]] = []
        for record in records:
            outcome = decode(record)
            if isinstance(outcome, Event):
                keep(outcome)
            elif outcome is NOT_LOOKED_UP:  # from here on the partition waits for the registry
                records = self._schemas.wait(tp, records, record, now)
                break
            else:
                failed.append((record, outcome))
        # Tracked once decoded (nothing runs in between): a waiting partition's rest is not.
        self._tracker.add_all(tp, records, int(self._wall() * 1000))
        self.metrics.consumed.labels(role.source).inc(len(records))
        for record, failure in failed:
            self._spawn(self._dead_letter(record, failure))
        for batch in self._batcher.add_all(events, now):
            self._submit(batch)

    def _submit(self, batch: Batch) -> None:
        self._delivery.submit(batch.destination, batch.events, batch.created)

    async def _dead_letter(self, record: RecordLike, failure: Failure) -> None:
        await self._delivery.dead_letter(record, failure, attempts_of(record), None)

    def _records_done(self, records: Sequence[RecordLike]) -> None:
        self._tracker.done_records(records)

    def _stop_fetching(self) -> bool:
        # Not while down: probes rotate through the waiting batches, so batches read during an
        # outage are what ends one that a failing batch made look like it (memory stays
        # bounded by kafka.max_pending_*). A pause is answered to every batch alike.
        return self.health.state is State.PAUSED or self._fatal_publish_trouble()

    def _fatal_publish_trouble(self) -> bool:
        """A retry or dead-letter topic refuses writes for good (not authorized, too large):
        reading more would only pile up records that cannot finish."""
        return any(not t.retriable for t in self._delivery.publish_trouble.values())

    # ----------------------------------------------------------------- rebalance and drain

    async def _drain(self, partitions: Iterable[object], budget_s: float) -> bool:
        """Send what is batched and wait, at most ``budget_s``, until these partitions have
        nothing pending."""
        for batch in self._batcher.drain():
            self._submit(batch)
        watched = list(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s
        while any(self._tracker.pending(p) for p in watched):
            if loop.time() >= deadline:
                self._log.warning(
                    "drain_timed_out",
                    budget_s=budget_s,
                    pending=sum(self._tracker.pending(p) for p in watched),
                    note="uncommitted records will be delivered again, with the same uuid",
                )
                return False
            await asyncio.sleep(0.02)
        return True

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Drain and commit the revoked partitions within the group's rebalance timeout."""
        if not revoked:
            return
        if not await self._drain(revoked, self.config.kafka.revoke_drain_ms / 1000):
            dropped = self._delivery.dispatch.drop(revoked)
            self.metrics.revoked_dropped.inc(dropped)
            self._log.warning(
                "revoked_batches_dropped",
                events=dropped,
                note="not sent by this member any more: the partitions' new owner reads them",
            )
        if not await self._committer.commit(REVOKE_COMMIT_MS / 1000, why="revoke"):
            self._log.warning(
                "revoke_commit_failed",
                partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in revoked),
                note="the new owner starts from the last commit: some events are sent twice",
            )
        self._tracker.forget(revoked)
        self._flow.forget(revoked)
        self._schemas.forget(revoked)
        self._lag.forget(revoked)
        self._log.info(
            "partitions_revoked", partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in revoked)
        )

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._joined = True
        self._log.info(
            "partitions_assigned",
            partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in assigned),
        )
