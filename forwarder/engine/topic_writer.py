"""Writes to the retry-tier and dead-letter topics, retried until the broker acknowledges.

A record handed here is not lost and not finished until Kafka has it: only then is ``on_done``
called for it, which lets the pipeline commit past it. Each failure is counted
(``forwarder_publish_failures_total{topic,error}``), logged at most once per interval per
topic, and kept in :attr:`TopicWriter.trouble`, from which the pipeline turns not ready when a
topic has failed for too long and stops fetching when the topic refuses every write (not
authorized).

A record always fits (``forwarder.core.fitting``): before each write it is fitted to the
topic's limit as far as known (``Publisher.record_limit``); a size refusal teaches a lower limit
and the record is fitted again at once. So a record too large for its topic, or an error about
one record (``PublishResult.record_level``), holds up that record only, never every partition.
A retry-tier record that cannot fit even without its producer headers and key is dead-lettered
instead (reason ``too_large``). Records written compressed, cut or trimmed are counted in
``forwarder_records_fitted_total{topic,how}``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from forwarder.core import fitting
from forwarder.core.backoff import backoff_s
from forwarder.core.headers import (
    ATTEMPTS,
    NOT_BEFORE,
    Failure,
    dead_letter_headers,
    header_value,
)
from forwarder.core.records import RecordLike
from forwarder.core.topics import dlq_topic, source_of_tier
from forwarder.ports import Publisher, PublishResult
from forwarder.telemetry.metrics import Metrics

LOG_INTERVAL_S = 30.0
BACKOFF_MAX_S = 5.0


@dataclass(slots=True)
class PublishTrouble:
    """A topic whose writes are failing: since when, with what, and whether it can recover."""

    error: str
    since: float
    retriable: bool


class TopicWriter:
    def __init__(
        self,
        publisher: Publisher,
        metrics: Metrics,
        on_done: Callable[[Sequence[RecordLike]], None],
        rng: random.Random,
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._on_done = on_done
        self._rng = rng
        self._log = structlog.get_logger("forwarder.engine.delivery")
        self.trouble: dict[str, PublishTrouble] = {}
        self._logged_at: dict[str, float] = {}
        self._fit_logged_at: dict[str, float] = {}
        self._assumed: dict[str, int] = {}  # limits learnt from refusals the config did not explain

    async def write(self, topic: str, record: RecordLike, headers: list[tuple[str, bytes]]) -> None:
        """Produce until the broker acknowledges; every failure counted, logged and reported."""
        tier = header_value(headers, NOT_BEFORE) is not None
        failures = 0
        fitted_to: int | None = None
        fitted: fitting.Fitted | None = None
        while True:
            limit = self._limit(topic)
            if limit != fitted_to:  # fitted again only for a new limit: compressing costs
                fitted_to = limit
                fitted = fitting.fit(limit, record.key, record.value, headers, dead_letter=not tier)
            if fitted is None and tier:
                await self._dead_letter_unparkable(topic, record, headers, limit)
                return
            if fitted is None:  # not even the forwarder's headers fit: the topic is misconfigured
                result = PublishResult(False, "RecordTooLargeError", True, record_level=True)
            else:
                result = await self._publisher.publish(
                    topic, fitted.key, fitted.value, fitted.headers
                )
            if result.acknowledged:
                if topic in self.trouble:
                    self._recovered(topic)
                if fitted is not None and fitted.how != fitting.WHOLE:
                    self._fitted(topic, fitted, record, limit)
                self._on_done((record,))
                return
            if result.too_large and fitted is not None and self._refused(topic, fitted, result):
                continue  # a lower limit learnt: fitted again at once
            failures += 1
            self._failed(topic, result)
            await asyncio.sleep(backoff_s(failures, 0.1, BACKOFF_MAX_S, self._rng.uniform) + 0.05)

    def _limit(self, topic: str) -> int:
        known = self._publisher.record_limit(topic)
        return min(known, self._assumed.get(topic, known))

    def _refused(self, topic: str, fitted: fitting.Fitted, result: PublishResult) -> bool:
        """A record of ``fitted.size`` bytes was too large: learn the topic's limit (the
        publisher read its config again). False when nothing lower was learnt: then the
        refusal is retried with backoff like any failure."""
        learnt = fitting.limit_after_refusal(self._limit(topic), fitted.size)
        if learnt >= fitted.size:
            return False
        self._metrics.publish_failures.labels(topic, result.error).inc()
        self._assumed[topic] = learnt
        self._log.warning(
            "publish_too_large",
            topic=topic,
            error=result.error,
            record_bytes=fitted.size,
            limit_bytes=learnt,
            note="fitted again to the limit learnt; other records are not held up",
        )
        return True

    def _fitted(self, topic: str, fitted: fitting.Fitted, record: RecordLike, limit: int) -> None:
        self._metrics.records_fitted.labels(topic, fitted.how).inc()
        now = time.monotonic()
        if now - self._fit_logged_at.get(topic, float("-inf")) >= LOG_INTERVAL_S:
            self._fit_logged_at[topic] = now
            self._log.warning(
                "record_fitted",
                topic=topic,
                how=fitted.how,
                original_bytes=len(record.value or b""),
                written_bytes=fitted.size,
                limit_bytes=limit,
                source=f"{record.topic}-{record.partition}@{record.offset}",
                note="see forwarder.value.* headers; dlq replay reads a cut value's original again",
            )

    async def _dead_letter_unparkable(
        self, topic: str, record: RecordLike, headers: list[tuple[str, bytes]], limit: int
    ) -> None:
        """A tier record over the tier's limit even without the producer's headers and key."""
        source = source_of_tier(topic) or record.topic
        attempts = header_value(headers, ATTEMPTS)
        failure = Failure(
            "too_large",
            f"the record ({len(record.value or b'')} bytes) does not fit retry topic {topic} "
            f"(at most {limit} bytes per record): dead-lettered instead of parked",
        )
        self._metrics.dead_lettered.labels("too_large", "", "").inc()
        self._metrics.records_fitted.labels(topic, "dead_lettered").inc()
        letter = dead_letter_headers(
            record,
            failure,
            attempts=int(attempts) if attempts and attempts.isdigit() else 0,
            destination=None,
            now=time.time(),
        )
        await self.write(dlq_topic(source), record, letter)

    def _failed(self, topic: str, result: PublishResult) -> None:
        now = asyncio.get_running_loop().time()
        self._metrics.publish_failures.labels(topic, result.error).inc()
        # An error about one record does not make the topic unwritable: it holds up that record
        # (and its partition's commits) only, never every partition.
        retriable = result.retriable or result.record_level
        trouble = self.trouble.get(topic)
        if trouble is None:
            trouble = self.trouble[topic] = PublishTrouble(result.error, now, retriable)
        trouble.error, trouble.retriable = result.error, retriable
        if now - self._logged_at.get(topic, float("-inf")) >= LOG_INTERVAL_S:
            self._logged_at[topic] = now
            self._log.warning(
                "publish_failing",
                topic=topic,
                error=result.error,
                retriable=result.retriable,
                record_level=result.record_level,
                failing_for_s=round(now - trouble.since, 1),
                note="the source offsets stay uncommitted until the broker acknowledges",
            )

    def _recovered(self, topic: str) -> None:
        trouble = self.trouble.pop(topic)
        self._logged_at.pop(topic, None)
        self._log.info("publish_recovered", topic=topic, error=trouble.error)
