"""Whether a personalization service is usable, and when to probe it again (pure).

401 (bad key) and 404 (unknown service or parent segment) will not heal by retrying each
trigger: the service is *misconfigured*. Then no trigger calls it; one probe at a time asks again
with a capped, jittered backoff, and the first answer that is neither 401 nor 404 ends it.
The cause is logged at most once per ``LOG_INTERVAL_S``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from forwarder.core.backoff import backoff_s

MISCONFIGURED_STATUSES = (401, 404)
PROBE_INITIAL_S = 1.0
PROBE_MAX_S = 30.0
LOG_INTERVAL_S = 60.0


class Change(Enum):
    ENTERED = "entered"
    LEFT = "left"


class ServiceHealth:
    def __init__(self, probe_initial_s: float = PROBE_INITIAL_S, probe_max_s: float = PROBE_MAX_S):
        self.probe_initial_s = probe_initial_s
        self.probe_max_s = probe_max_s
        self.cause: int | None = None  # the status that made it misconfigured
        self.probes = 0
        self._logged_at = float("-inf")

    @property
    def misconfigured(self) -> bool:
        return self.cause is not None

    def observe(self, status: int | None) -> Change | None:
        """Take one answer's status (None: transport failure); say if the state changed."""
        if status in MISCONFIGURED_STATUSES:
            entered = self.cause is None
            self.cause = status
            return Change.ENTERED if entered else None
        if status is None or self.cause is None:
            return None  # a transport failure says nothing about the configuration
        self.cause = None
        self.probes = 0
        self._logged_at = float("-inf")
        return Change.LEFT

    def should_log(self, now: float) -> bool:
        if now - self._logged_at >= LOG_INTERVAL_S:
            self._logged_at = now
            return True
        return False

    def next_probe_delay(self, uniform: Callable[[float, float], float]) -> float:
        """Seconds before the next probe: backoff, at least half its ceiling (never a storm)."""
        self.probes += 1
        ceiling = min(self.probe_max_s, self.probe_initial_s * 2 ** (self.probes - 1))
        return float(ceiling / 2 + backoff_s(1, ceiling / 2, ceiling / 2, uniform))
