"""One personalization service's output topic: answers written latest-wins per user.

Answers come back out of order (a call retried through 500s and then the fallback, a cached
answer going out while an older call is in flight), so an answer is written only if no newer
trigger of its user was written already (``forwarder.core.latest_wins.PublishedOrder``: by the
order the ingest endpoint accepted the trigger events in); an older one is dropped and counted
as ``forwarder_personalization_triggers_dropped_total{cause="superseded"}``. Writes run in
tasks of their own, at most ``PUBLISH_SLOTS`` at once, so a slow broker slows the workers, not
memory; retriable write errors are retried a few times, then the answer is dropped visibly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from forwarder.config import PersonalizationService
from forwarder.core.activation_records import Answer, BoundedLabels, CallError, output_record
from forwarder.core.latest_wins import SUPERSEDED, PublishedOrder, Trigger
from forwarder.ports import Publisher
from forwarder.telemetry.metrics import Metrics

SECTION_LABELS = 20
PUBLISH_SLOTS = 256
PUBLISH_ATTEMPTS = 5  # retriable write errors of the output topic, 0.2 s doubling


class AnswerOutput:
    def __init__(
        self,
        service: PersonalizationService,
        publisher: Publisher,
        metrics: Metrics,
        drop: Callable[[str], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._service = service
        self._name = service.name
        self._publisher = publisher
        self._metrics = metrics
        self._drop = drop
        self._spawn = spawn
        self._log = structlog.get_logger("forwarder.engine.personalization").bind(
            service=self._name
        )
        self._sections = BoundedLabels(SECTION_LABELS)
        self._slots = asyncio.Semaphore(PUBLISH_SLOTS)
        # Twice the users the queue holds: a user is forgotten only long after any older call
        # of theirs could still be answered.
        self._order = PublishedOrder(2 * service.queue_max_entries)

    async def publish(
        self,
        trigger: Trigger,
        answer: Answer | None,
        source: str,
        requested_at: float,
        latency_ms: float,
        error: CallError | None,
    ) -> None:
        """Write the record of ``trigger``'s answer (``None``: the fallback), latest-wins."""
        if not self._order.admit(trigger.user_id, trigger.seq):
            # A newer trigger of this user was answered first: a consumer keyed by user would
            # keep this older answer as the user's latest.
            self._drop(SUPERSEDED)
            return
        value = output_record(
            trigger, answer, source, requested_at, latency_ms, error, self._service.fallback_outputs
        )
        section = "fallback" if answer is None else answer.section
        self._metrics.p13n_sections.labels(self._name, self._sections.label(section)).inc()
        # The slot is taken here, so a slow broker slows the workers, not memory.
        await self._slots.acquire()
        self._spawn(self._send(trigger, value, source))

    async def _send(self, trigger: Trigger, value: bytes, source: str) -> None:
        key = trigger.user_id.encode()
        try:
            # A derived stream: retriable errors are retried a few times, then the answer is
            # dropped visibly (the trigger event itself was delivered and is not at stake).
            for attempt in range(PUBLISH_ATTEMPTS):
                result = await self._publisher.publish(self._service.topic, key, value, [])
                if result.acknowledged:
                    self._metrics.p13n_published.labels(self._name, source).inc()
                    return
                if not result.retriable or attempt == PUBLISH_ATTEMPTS - 1:
                    break
                await asyncio.sleep(0.2 * 2**attempt)
                if self._order.superseded(trigger.user_id, trigger.seq):
                    # A newer answer went out while this one waited to be written again.
                    self._drop(SUPERSEDED)
                    return
            self._metrics.p13n_dropped.labels(self._name, "publish_failed").inc()
            self._log.warning(
                "personalization_publish_failed",
                topic=self._service.topic,
                error=result.error,
                retriable=result.retriable,
            )
        finally:
            self._slots.release()
