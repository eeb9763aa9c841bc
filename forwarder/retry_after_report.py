"""``Retry-After`` headers that are neither delta seconds nor an HTTP date: counted and logged.

Such an answer is handled as one without the header (``forwarder.core.backoff``): the request's
own backoff applies. Each one is counted in
``forwarder_retry_after_unreadable_total{source}`` (``endpoint`` or a personalization service's
configured name: a bounded set) and logged as ``retry_after_unreadable`` at most once per
interval per source, with a short sample of the value and how many went unlogged since.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from forwarder.metrics import Metrics

LOG_INTERVAL_S = 60.0
SAMPLE_CHARS = 80

Report = Callable[[str, str], None]  # (source, the header's value)


class RetryAfterReport:
    def __init__(
        self,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._interval_s = interval_s
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._log = structlog.get_logger("forwarder.http")

    def __call__(self, source: str, value: str) -> None:
        self._metrics.retry_after_unreadable.labels(source).inc()
        now = self._clock()
        last = self._logged_at.get(source)
        if last is not None and now - last < self._interval_s:
            self._unlogged[source] = self._unlogged.get(source, 0) + 1
            return
        self._logged_at[source] = now
        self._log.warning(
            "retry_after_unreadable",
            source=source,
            sample=value[:SAMPLE_CHARS],
            unlogged_since_last=self._unlogged.pop(source, 0),
            note="handled as an answer without Retry-After: the request's own backoff applies",
        )


def ignore(_source: str, _value: str) -> None:
    """The report of a client built without one (a one-off command): nothing to count into."""
