"""Parking and dead letters: where events go when the endpoint will not take them.

``park`` writes each event's record to the next retry tier (``<topic>.retry.<n>``, due after
its delay), or to the dead-letter topic after the last tier (``retries_exhausted``);
``dead_letter`` writes one record to ``<topic>.dlq`` with its reason. Every write goes through
``forwarder.engine.topic_writer``, retried until the broker acknowledges it; only then is the record
done (its offset may be committed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from forwarder.core.classify import Decision, Policy, describe, status_label
from forwarder.core.decode import Event
from forwarder.core.headers import Failure, attempts_of, dead_letter_headers, retry_headers
from forwarder.core.records import RecordLike
from forwarder.core.topics import TopicMap
from forwarder.engine.topic_writer import TopicWriter
from forwarder.telemetry.metrics import Metrics


class Parking:
    def __init__(
        self,
        writer: TopicWriter,
        topics: TopicMap,
        policy: Policy,
        metrics: Metrics,
        wall_clock: Callable[[], float],
    ) -> None:
        self.writer = writer
        self._topics = topics
        self._policy = policy
        self._metrics = metrics
        self._wall = wall_clock

    async def park(
        self, destination: str, events: list[Event], decision: Decision, tries: int
    ) -> None:
        """In-process tries are spent: the next retry tier, or the dead-letter topic after the last."""
        now = self._wall()
        to_dead_letter: list[Event] = []
        parked = []
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
            self._metrics.retried.labels(
                tier, status_label(decision.status), self._policy.code_label(decision.code)
            ).inc()
            parked.append(self.writer.write(topic, record, headers))
        if parked:
            await asyncio.gather(*parked)
        if to_dead_letter:
            await self.dead_letter_all(
                destination, to_dead_letter, decision, tries, "retries_exhausted"
            )

    async def dead_letter_all(
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
            record, failure, attempts=attempts, destination=destination, now=self._wall()
        )
        self._metrics.dead_lettered.labels(
            failure.reason,
            status_label(failure.status),
            self._policy.code_label(failure.code),
        ).inc()
        await self.writer.write(self._topics.dlq_for(record.topic), record, headers)
