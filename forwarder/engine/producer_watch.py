"""Whether the producer reaches Kafka, for ``/readyz``: checked on a timer and when writes say so.

An idle producer holds no request in flight, so the pipeline asks it (``Publisher.check``, a
metadata round trip) every ``CHECK_EVERY_S``. A write is news sooner: the publisher the
pipeline hands to the delivery and the personalization is wrapped here, and a write that fails
for a reason other than its own record, or the first one that succeeds after a problem, has
the producer checked at once, so ``/readyz`` turns (and recovers) within one round trip instead
of waiting for the timer. One check runs at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from forwarder.ports import Publisher, PublishResult

CHECK_EVERY_S = 10.0

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class ProducerWatch:
    """A ``Publisher`` that passes every call through and keeps :attr:`problem` current."""

    def __init__(self, publisher: Publisher, spawn: Spawn, clock: Callable[[], float]) -> None:
        self._publisher = publisher
        self._spawn = spawn
        self._clock = clock
        self._log = structlog.get_logger("forwarder.engine.pipeline")
        self.problem = ""  # why the producer cannot reach Kafka; "" while it can
        self._due = 0.0
        self._checking = False

    # ----------------------------------------------------------------- Publisher

    async def start(self) -> None:
        await self._publisher.start()

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> PublishResult:
        result = await self._publisher.publish(topic, key, value, headers)
        if result.acknowledged:
            if self.problem:
                self._check_now()
        elif not result.record_level:
            self._check_now()
        return result

    def record_limit(self, topic: str) -> int:
        return self._publisher.record_limit(topic)

    async def check(self) -> str:
        return await self._publisher.check()

    async def stop(self) -> None:
        await self._publisher.stop()

    # ----------------------------------------------------------------- the checks

    def poll(self, now: float) -> None:
        """The timer: check when ``CHECK_EVERY_S`` have passed since the last check began."""
        if now >= self._due:
            self._check_now()

    def _check_now(self) -> None:
        if self._checking:
            return
        self._checking = True
        self._due = self._clock() + CHECK_EVERY_S
        self._spawn(self._check())

    async def _check(self) -> None:
        try:
            problem = await self._publisher.check()
        finally:
            self._checking = False
        if problem != self.problem:
            self._log.log(
                30 if problem else 20,
                "producer_unreachable" if problem else "producer_reachable",
                problem=problem,
            )
        self.problem = problem
