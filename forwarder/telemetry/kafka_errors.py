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

from forwarder.telemetry.counted_warning import CountedWarning
from forwarder.telemetry.metrics import Metrics

LOG_INTERVAL_S = 30.0


class KafkaErrors:
    def __init__(
        self,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self._warn = CountedWarning(
            metrics.kafka_errors, "forwarder.kafka", "kafka_error", interval_s, clock
        )

    def report(self, operation: str, error: str, **context: Any) -> None:
        """Count one failed ``operation`` (fetch, commit, end_offsets) and maybe log it."""
        self._warn((operation, error), operation=operation, error=error, **context)
