"""Warnings that can repeat: each one counted in a metric, logged once per interval per kind.

The first of a kind in each interval is logged, with how many went unlogged since the last
line; every one is counted, so the metric tells how often and the log what it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Counter


class CountedWarning:
    def __init__(
        self,
        counter: Counter,
        logger: str,
        event: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counter = counter
        self._log = structlog.get_logger(logger)
        self._event = event
        self._interval_s = interval_s
        self._clock = clock
        self._logged_at: dict[tuple[str, ...], float] = {}
        self._unlogged: dict[tuple[str, ...], int] = {}

    def __call__(self, labels: tuple[str, ...], **context: Any) -> None:
        """Count one under ``labels`` (also the kind it is logged by) and maybe log it."""
        self._counter.labels(*labels).inc()
        now = self._clock()
        last = self._logged_at.get(labels)
        if last is not None and now - last < self._interval_s:
            self._unlogged[labels] = self._unlogged.get(labels, 0) + 1
            return
        self._logged_at[labels] = now
        self._log.warning(self._event, unlogged_since_last=self._unlogged.pop(labels, 0), **context)
