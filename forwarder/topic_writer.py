"""Writes to the retry-tier and dead-letter topics, retried until the broker acknowledges.

A record handed here is not lost and not finished until Kafka has it: only then is ``on_done``
called for it, which lets the pipeline commit past it. Each failure is counted
(``forwarder_publish_failures_total{topic,error}``), logged at most once per interval per
topic, and kept in :attr:`TopicWriter.trouble`, from which the pipeline turns not ready when a
topic has failed for too long and stops fetching when a write can never succeed (not
authorized, too large).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from forwarder.core.backoff import backoff_s
from forwarder.core.records import RecordLike
from forwarder.metrics import Metrics
from forwarder.ports import Publisher, PublishResult

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
        self._log = structlog.get_logger("forwarder.delivery")
        self.trouble: dict[str, PublishTrouble] = {}
        self._logged_at: dict[str, float] = {}

    async def write(self, topic: str, record: RecordLike, headers: list[tuple[str, bytes]]) -> None:
        """Produce until the broker acknowledges; every failure counted, logged and reported."""
        failures = 0
        while True:
            result = await self._publisher.publish(topic, record.key, record.value, headers)
            if result.acknowledged:
                if topic in self.trouble:
                    self._recovered(topic)
                self._on_done((record,))
                return
            failures += 1
            self._failed(topic, result)
            await asyncio.sleep(backoff_s(failures, 0.1, BACKOFF_MAX_S, self._rng.uniform) + 0.05)

    def _failed(self, topic: str, result: PublishResult) -> None:
        now = asyncio.get_running_loop().time()
        self._metrics.publish_failures.labels(topic, result.error).inc()
        trouble = self.trouble.get(topic)
        if trouble is None:
            trouble = self.trouble[topic] = PublishTrouble(result.error, now, result.retriable)
        trouble.error, trouble.retriable = result.error, result.retriable
        if now - self._logged_at.get(topic, float("-inf")) >= LOG_INTERVAL_S:
            self._logged_at[topic] = now
            self._log.warning(
                "publish_failing",
                topic=topic,
                error=result.error,
                retriable=result.retriable,
                failing_for_s=round(now - trouble.since, 1),
                note="the source offsets stay uncommitted until the broker acknowledges",
            )

    def _recovered(self, topic: str) -> None:
        trouble = self.trouble.pop(topic)
        self._logged_at.pop(topic, None)
        self._log.info("publish_recovered", topic=topic, error=trouble.error)
