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

from forwarder.telemetry.counted_warning import CountedWarning
from forwarder.telemetry.metrics import Metrics

LOG_INTERVAL_S = 60.0
SAMPLE_CHARS = 80

Report = Callable[[str, str], None]  # (source, the header's value)


class RetryAfterReport:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._warn = CountedWarning(
            metrics.retry_after_unreadable,
            "forwarder.http",
            "retry_after_unreadable",
            LOG_INTERVAL_S,
            clock,
        )

    def __call__(self, source: str, value: str) -> None:
        self._warn(
            (source,),
            source=source,
            sample=value[:SAMPLE_CHARS],
            note="handled as an answer without Retry-After: the request's own backoff applies",
        )


def ignore(_source: str, _value: str) -> None:
    """The report of a client built without one (a one-off command): nothing to count into."""
