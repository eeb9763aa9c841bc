"""Delivery of one batch: post, classify, then ack, retry, split, park or dead-letter.

Every event handed to :meth:`Delivery.send` ends in exactly one place: accepted by the
endpoint, written to a retry tier, or written to the dead-letter topic. Only then is
``on_done`` called for its record (for a whole batch's records at once when the endpoint
accepts them), which is what lets the pipeline commit their offsets.

Pause: a systemic fault (a bad token, a missing stream) would hit every event, so the batch is
neither retried to exhaustion nor dead-lettered. The delivery holds it, reports the pause (the
pipeline stops fetching and turns not ready), logs the cause at most once per interval, and
re-sends it with a capped backoff: that re-send is the probe. The first answer that is not a
pause ends it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence

import structlog

from forwarder.adapters.http_sink import HttpSink
from forwarder.adapters.kafka_publisher import KafkaPublisher
from forwarder.config import RetryConfig
from forwarder.core.backoff import backoff_s, retry_delay_s
from forwarder.core.batcher import body_of
from forwarder.core.classify import Action, Decision, Policy, classify, describe
from forwarder.core.decode import Event
from forwarder.core.headers import Failure, attempts_of, dead_letter_headers, retry_headers
from forwarder.core.records import RecordLike
from forwarder.core.topics import TopicMap
from forwarder.metrics import Metrics

PAUSE_LOG_INTERVAL_S = 30.0
PAUSE_PROBE_MAX_S = 30.0
THROTTLE_STATUSES = (429, 503)


class Delivery:
    def __init__(
        self,
        sink: HttpSink,
        publisher: KafkaPublisher,
        topics: TopicMap,
        policy: Policy,
        retry: RetryConfig,
        metrics: Metrics,
        on_done: Callable[[Sequence[RecordLike]], None],
        rng: random.Random | None = None,
        on_accepted: Callable[[str, Sequence[Event]], None] | None = None,  # personalization
    ) -> None:
        self._sink = sink
        self._publisher = publisher
        self._topics = topics
        self._policy = policy
        self._retry = retry
        self._metrics = metrics
        self._on_done = on_done
        self._on_accepted = on_accepted
        self._rng = rng or random.Random()
        self._log = structlog.get_logger("forwarder.delivery")
        self.pause_cause: Decision | None = None
        self._pause_logged_at = float("-inf")
        self._pausing_batches = 0

    @property
    def paused(self) -> bool:
        return self.pause_cause is not None

    async def send(self, destination: str, events: list[Event]) -> None:
        """Deliver a batch; returns once every event is done (or the publisher stopped)."""
        self._metrics.batch_events.observe(len(events))
        await self._send(destination, events)

    async def _send(self, destination: str, events: list[Event]) -> None:
        tries = 0
        pause_probes = 0
        while True:
            result = await self._sink.post(destination, body_of(events))
            tries += 1
            decision = classify(result, self._policy, len(events))
            self._observe(decision, result.elapsed_s)
            if decision.action is Action.PAUSE:
                pause_probes += 1
                self._enter_pause(decision)
                await asyncio.sleep(
                    backoff_s(pause_probes, 1.0, PAUSE_PROBE_MAX_S, self._rng.uniform) + 0.5
                )
                tries -= 1  # a pause probe does not use up the event's retry budget
                continue
            if pause_probes:
                self._leave_pause(decision)
                pause_probes = 0
            if decision.action is Action.ACK:
                self._ack(destination, events)
                return
            if decision.action is Action.PARTIAL:
                accepted = [e for e, ok in zip(events, decision.accepted, strict=True) if ok]
                self._ack(destination, accepted)
                events = [e for e, ok in zip(events, decision.accepted, strict=True) if not ok]
            if decision.action in (Action.RETRY, Action.PARTIAL):
                if decision.retry_after_s is not None and decision.status in THROTTLE_STATUSES:
                    self._sink.slow_down(decision.retry_after_s)
                if tries < self._retry.attempts:
                    self._metrics.retried.labels(
                        "0", _label(decision.status), _label(decision.code)
                    ).inc(len(events))
                    await asyncio.sleep(self._delay(tries, decision))
                    continue
                await self._park(destination, events, decision, tries)
                return
            if decision.action in (Action.ISOLATE, Action.SPLIT):
                await self._split(destination, events, decision, tries)
                return
            # DEAD_LETTER: the endpoint will never take these events as they are.
            await self._dead_letter_all(destination, events, decision, tries, "rejected")
            return

    def _delay(self, tries: int, decision: Decision) -> float:
        return retry_delay_s(
            tries,
            self._retry.backoff_initial_ms / 1000,
            self._retry.backoff_max_ms / 1000,
            self._rng.uniform,
            decision.retry_after_s,
        )

    async def _split(
        self, destination: str, events: list[Event], decision: Decision, tries: int
    ) -> None:
        if len(events) == 1:
            reason = "rejected" if decision.action is Action.ISOLATE else "too_large"
            self._metrics.isolated.inc()
            await self._dead_letter_all(destination, events, decision, tries, reason)
            return
        middle = len(events) // 2
        self._metrics.isolation_requests.inc(2)
        await asyncio.gather(
            self._send(destination, events[:middle]), self._send(destination, events[middle:])
        )

    def _ack(self, destination: str, events: Sequence[Event]) -> None:
        if not events:
            return
        self._metrics.forwarded.labels(destination).inc(len(events))
        self._on_done([event.record for event in events])
        if self._on_accepted is not None:  # personalization: after the endpoint accepted them
            self._on_accepted(destination, events)

    async def _park(
        self, destination: str, events: list[Event], decision: Decision, tries: int
    ) -> None:
        """In-process tries are spent: the next retry tier, or the dead-letter topic after the last."""
        now = time.time()
        to_dead_letter: list[Event] = []
        parked: list[asyncio.Future[None]] = []
        for event in events:
            record = event.record
            nxt = self._topics.next_tier(record.topic)
            if nxt is None:
                to_dead_letter.append(event)
                continue
            topic, delay = nxt
            headers = retry_headers(
                record,
                attempts=attempts_of(record) + tries,
                not_before_ms=int((now + delay) * 1000),
            )
            tier = topic.rsplit(".", 1)[1]
            self._metrics.retried.labels(tier, _label(decision.status), _label(decision.code)).inc()
            parked.append(asyncio.ensure_future(self._publish(topic, record, headers)))
        if parked:
            await asyncio.gather(*parked)
        if to_dead_letter:
            await self._dead_letter_all(
                destination, to_dead_letter, decision, tries, "retries_exhausted"
            )

    async def _dead_letter_all(
        self, destination: str, events: list[Event], decision: Decision, tries: int, reason: str
    ) -> None:
        detail = decision.detail or describe(decision.status, decision.code)
        failure = Failure(reason, detail, decision.status, decision.code)
        await asyncio.gather(
            *(
                self.dead_letter(e.record, failure, attempts_of(e.record) + tries, destination)
                for e in events
            )
        )

    async def dead_letter(
        self, record: RecordLike, failure: Failure, attempts: int, destination: str | None
    ) -> None:
        headers = dead_letter_headers(
            record, failure, attempts=attempts, destination=destination, now=time.time()
        )
        self._metrics.dead_lettered.labels(
            failure.reason, _label(failure.status), _label(failure.code)
        ).inc()
        await self._publish(self._topics.dlq_for(record.topic), record, headers)

    async def _publish(
        self, topic: str, record: RecordLike, headers: list[tuple[str, bytes]]
    ) -> None:
        if await self._publisher.publish(topic, record.key, record.value, headers):
            self._on_done((record,))

    def _observe(self, decision: Decision, elapsed_s: float) -> None:
        status = "transport" if decision.status is None else str(decision.status)
        self._metrics.requests.labels(status, _label(decision.code)).inc()
        self._metrics.request_seconds.observe(elapsed_s)

    def _enter_pause(self, decision: Decision) -> None:
        now = time.monotonic()
        if self.pause_cause is None:
            self._metrics.paused.labels(_label(decision.code)).set(1)
        self.pause_cause = decision
        if now - self._pause_logged_at >= PAUSE_LOG_INTERVAL_S:
            self._pause_logged_at = now
            self._log.error(
                "endpoint_paused",
                status=decision.status,
                code=decision.code,
                cause=describe(decision.status, decision.code),
                action="fix the credentials or the endpoint configuration; probing until it works",
            )

    def _leave_pause(self, decision: Decision) -> None:
        if self.pause_cause is not None:
            self._metrics.paused.labels(_label(self.pause_cause.code)).set(0)
            self._log.info("endpoint_resumed", status=decision.status)
        self.pause_cause = None
        self._pause_logged_at = float("-inf")


def _label(value: int | None) -> str:
    return "" if value is None else str(value)
