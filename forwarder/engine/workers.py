"""The pipeline's tasks: senders taking batches from the delivery's dispatcher (``max_in_flight``
of them, or ``adaptive_max`` when adaptive: the limiter caps the requests in flight), and side
tasks (dead letters of invalid records, lag and producer checks). A task that fails is a bug:
it is logged with its traceback and counted in ``forwarder_internal_errors_total{task}``; its
records stay uncommitted, so they are delivered again after a restart, never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from forwarder.engine.delivery import Delivery
from forwarder.telemetry.metrics import Metrics


class Workers:
    def __init__(self, delivery: Delivery, metrics: Metrics) -> None:
        self._delivery = delivery
        self._metrics = metrics
        self._log = structlog.get_logger("forwarder.engine.pipeline")
        self._senders: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()

    def start(self, senders: int) -> None:
        self._senders = [asyncio.create_task(self._sender()) for _ in range(senders)]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    async def stop_senders(self) -> None:
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)

    async def stop_side_tasks(self) -> None:
        for task in list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: its records stay pending (never committed), so say so
            self._metrics.internal_errors.labels("side_task").inc()
            self._log.error(
                "task_failed",
                task=task.get_coro().__qualname__,  # type: ignore[union-attr]
                exc_info=exc,
                note="its records stay uncommitted and are delivered again after a restart",
            )

    async def _sender(self) -> None:
        delivery = self._delivery
        while True:
            job, probe = await delivery.next_job()
            try:
                await delivery.attempt(job, probe)
            except Exception:  # a bug: log loudly; the records stay pending, so nothing is lost
                self._metrics.internal_errors.labels("sender").inc()
                self._log.exception(
                    "delivery_failed",
                    destination=job.destination,
                    events=len(job.events),
                    note="these records stay uncommitted and are delivered again after a restart",
                )
