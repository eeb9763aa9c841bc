"""A batch's retry budget: which of its failed tries it is charged for.

Pure: the endpoint's health (``forwarder.core.health``) says whose failures they were. A try
whose failure is *resolved* (anything has worked since it was sent, or its destination is
degraded) was the batch's own: it is charged. A try still unresolved is pending: it may be the
start of an outage. When the tries would be spent only by pending ones, the batch holds
(retries at its last try) instead of taking a retry tier; when an outage is declared, every
try is given back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Step(enum.Enum):
    RETRY = "retry"  # in process, after a backoff
    HOLD = "hold"  # retry at the last try: the failures may be an outage not yet declared
    PARK = "park"  # spent: the next retry tier, or the dead-letter topic after the last


class RetryBudget:
    def __init__(self, attempts: int, spent: int = 0) -> None:
        self.attempts = attempts
        self._charged = spent
        self._pending = 0
        self._pending_from = 0.0
        self.failures = 0  # every failure, given back or not: how long the backoff grows

    @property
    def tries(self) -> int:
        """The tries spent, for the ``forwarder.attempts`` header: at most ``attempts``."""
        return min(self._charged + self._pending, self.attempts)

    def give_back(self) -> None:
        """An outage was declared: the failures before it were the endpoint's."""
        self._charged = self._pending = 0

    def failed(self, sent_at: float, unresolved: Callable[[float], bool]) -> Step:
        """One more try, sent at ``sent_at``, failed while the endpoint was not down or
        paused. ``unresolved(since)``: whether failures sent since then may still be an
        outage's (``EndpointHealth.unresolved`` for the batch's destination)."""
        self.failures += 1
        if self._pending and not unresolved(self._pending_from):
            self._charged += self._pending  # that run ended: its failures were the batch's
            self._pending = 0
        if not self._pending:
            self._pending_from = sent_at
        self._pending += 1
        if self._charged + self._pending < self.attempts:
            return Step.RETRY
        if self._charged < self.attempts and unresolved(self._pending_from):
            return Step.HOLD
        return Step.PARK
