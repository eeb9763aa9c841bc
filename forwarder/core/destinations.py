"""Destination health: which ``database.table`` is failing, and whether it fails alone.

Pure (time passed in, loop seconds). Fed by the endpoint's health with every answer about a
destination. A destination whose requests fail while another destination's succeed is
*degraded*: the fault is its own (a table answering 500 for good, a stream not found), so its
batches walk their own retry schedule and it may hold only a share of the senders. A
destination failing while nothing else works is *failing*: that may be the start of an outage
of the whole endpoint, which only the endpoint's health can declare.
"""

from __future__ import annotations

import enum
import math


class DestinationState(enum.Enum):
    HEALTHY = "healthy"
    FAILING = "failing"  # its requests fail and nothing else has worked since: scope unknown
    DEGRADED = "degraded"  # its requests fail while other destinations' succeed


class Destinations:
    def __init__(self, degraded_after_s: float = 5.0) -> None:
        self.degraded_after_s = degraded_after_s
        self._worked_at: dict[str, float] = {}  # last answer showing the destination working
        self._failing_from: dict[str, float] = {}  # send time of its run's first failed request
        self._failing_batches: dict[str, set[str]] = {}  # batches failed in its run (two suffice)
        self.worked_at = -math.inf  # last working answer of any destination

    def working(self, destination: str, now: float) -> None:
        self._worked_at[destination] = now
        self._failing_from.pop(destination, None)
        self._failing_batches.pop(destination, None)
        self.worked_at = now

    def failed(self, destination: str, sent_at: float, batch: str = "") -> None:
        self._failing_from.setdefault(destination, sent_at)
        batches = self._failing_batches.setdefault(destination, set())
        if len(batches) < 2:
            batches.add(batch)

    def worked_since(self, destination: str, moment: float) -> bool:
        """Whether a request to ``destination`` was answered as working at or after ``moment``."""
        return self._worked_at.get(destination, -math.inf) >= moment

    def failing(self, destination: str) -> bool:
        """Its last answer was a failure."""
        return destination in self._failing_from

    def degraded(self, destination: str) -> bool:
        """Failing, from two batches or more, for ``degraded_after_s`` while another
        destination worked after that."""
        since = self._failing_from.get(destination)
        if since is None or len(self._failing_batches[destination]) < 2:
            return False
        solid = since + self.degraded_after_s
        return any(at >= solid for other, at in self._worked_at.items() if other != destination)

    def state(self, destination: str) -> DestinationState:
        if destination not in self._failing_from:
            return DestinationState.HEALTHY
        if self.degraded(destination):
            return DestinationState.DEGRADED
        return DestinationState.FAILING

    def known(self) -> list[str]:
        """Every destination answered for so far, in name order."""
        return sorted(self._worked_at.keys() | self._failing_from.keys())

    def failing_for(self, destination: str, now: float) -> float:
        """Seconds since the destination's run of failures began (0 when it works)."""
        since = self._failing_from.get(destination)
        return 0.0 if since is None else now - since
