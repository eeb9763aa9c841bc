"""The activation orchestrator: fed by the delivery's ack path, runs one ``ServiceRunner`` each.

``offer`` is called synchronously with the events the ingest endpoint just accepted (so the
user's profile already holds them). It only parses the events bound for a destination some
service triggers on and queues triggers; it never awaits, so it cannot delay the ingest path or
its offset commits, and any bug in it is logged and counted, never raised into the delivery.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import orjson
import structlog

from forwarder.adapters.kafka_publisher import ensure_named_topics
from forwarder.config import Config
from forwarder.core.decode import Event
from forwarder.core.service_health import ServiceHealth
from forwarder.engine.personalization.runner import ServiceRunner
from forwarder.ports import Publisher
from forwarder.telemetry.metrics import Metrics


class Activation:
    def __init__(
        self,
        config: Config,
        publisher: Publisher,
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
        health: dict[str, ServiceHealth] | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._log = structlog.get_logger("forwarder.engine.personalization")
        rng = rng or random.Random()
        self.runners = [
            ServiceRunner(
                service,
                config.personalization.api_key,
                publisher,
                metrics,
                rng,
                (health or {}).get(service.name),
                config.retry.max_retry_after_s,
            )
            for service in config.personalization.services
        ]
        # Destination -> runners triggered by an event type routed there: the one lookup per
        # accepted batch; batches of other destinations are never parsed.
        self._by_destination: dict[str, list[ServiceRunner]] = {}
        for runner in self.runners:
            for event_type in runner.triggers:
                targets = self._by_destination.setdefault(config.destination_for(event_type), [])
                if runner not in targets:
                    targets.append(runner)

    async def start(self) -> None:
        if not self.runners:
            return
        await ensure_named_topics(
            self._config.kafka,
            [r.service.topic for r in self.runners],
            self._config.kafka.topics[0],
        )
        for runner in self.runners:
            runner.start()
        self._log.info(
            "personalization_started",
            services=[r.name for r in self.runners],
            topics=[r.service.topic for r in self.runners],
        )

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()

    def offer(self, destination: str, events: Sequence[Event]) -> None:
        """The delivery's hook: ``events`` of ``destination`` were accepted by the endpoint."""
        runners = self._by_destination.get(destination)
        if not runners:
            return
        now = time.monotonic()
        loads = orjson.loads
        try:
            for event in events:
                data = loads(event.body)
                event_type = data.get("event_type")
                for runner in runners:
                    if event_type in runner.triggers:
                        runner.offer(data, event.uuid, now)
            for runner in runners:
                runner.offered()
        except Exception:  # a bug here must never reach the ingest path
            self._metrics.p13n_errors.inc()
            self._log.exception("personalization_offer_failed", destination=destination)

    def readiness_note(self) -> str:
        """Appended to ``/readyz`` detail: a misconfigured service does not make us unready."""
        bad = [note for r in self.runners if (note := r.readiness_note())]
        return f"; personalization misconfigured: {', '.join(bad)}" if bad else ""
