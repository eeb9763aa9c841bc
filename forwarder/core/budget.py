"""A batch's retry budget: which of its failed tries it is charged for.

Pure: the endpoint's health (``forwarder.core.health``) says whose failures they were. A try
that failed in a run of failures that ended in a working answer, or that grew too old to be
declared an outage, was the batch's own: it is charged. A try in a run still unresolved is
pending: the run may be the start of an outage. When the tries would be spent only by pending
ones, the batch holds (retries at its last try) instead of taking a retry tier; when an outage
is declared, every try is given back.
"""

from __future__ import annotations

import enum
from typing import Protocol


class Step(enum.Enum):
    RETRY = "retry"  # in process, after a backoff
    HOLD = "hold"  # retry at the last try: the failures may be an outage not yet declared
    PARK = "park"  # spent: the next retry tier, or the dead-letter topic after the last


class Health(Protocol):
    def failing_since(self, moment: float, now: float) -> bool: ...


class RetryBudget:
    def __init__(self, attempts: int, spent: int = 0) -> None:
        self.attempts = attempts
        self._charged = spent
        self._pending = 0
        self._pending_from = 0.0

    @property
    def tries(self) -> int:
        """The tries spent, for the ``forwarder.attempts`` header: at most ``attempts``."""
        return min(self._charged + self._pending, self.attempts)

    def give_back(self) -> None:
        """An outage was declared: the failures before it were the endpoint's."""
        self._charged = self._pending = 0

    def failed(self, now: float, health: Health) -> Step:
        """One more try failed at ``now`` while the endpoint was not down or paused."""
        if self._pending and not health.failing_since(self._pending_from, now):
            self._charged += self._pending  # that run ended: its failures were the batch's
            self._pending = 0
        if not self._pending:
            self._pending_from = now
        self._pending += 1
        if self._charged + self._pending < self.attempts:
            return Step.RETRY
        if self._charged < self.attempts and health.failing_since(self._pending_from, now):
            return Step.HOLD
        return Step.PARK
