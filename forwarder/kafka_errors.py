"""Errors of the Kafka clients that the pipeline survives: counted, and logged without a flood.

The consumer's fetch, commit and end-offset calls fail now and then (a coordinator moving, a
broker restarting); the client reconnects by itself and the next call tries again, so these
are not fatal. They are never silent either: each one is counted in
``forwarder_kafka_errors_total{operation,error}`` (``error`` is the client's exception class
name, a bounded set), and logged as ``kafka_error`` at most once per interval per operation and
kind, with how many were left unlogged since.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from forwarder.metrics import Metrics

LOG_INTERVAL_S = 30.0


class KafkaErrors:
    def __init__(
        self,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._interval_s = interval_s
        self._logged_at: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}
        self._log = structlog.get_logger("forwarder.kafka")

    def report(self, operation: str, error: str, **context: Any) -> None:
        """Count one failed ``operation`` (fetch, commit, end_offsets) and maybe log it."""
        self._metrics.kafka_errors.labels(operation, error).inc()
        key = (operation, error)
        now = self._clock()
        last = self._logged_at.get(key)
        if last is not None and now - last < self._interval_s:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._logged_at[key] = now
        self._log.warning(
            "kafka_error",
            operation=operation,
            error=error,
            unlogged_since_last=self._unlogged.pop(key, 0),
            **context,
        )
