"""Endpoint health: is the endpoint failing as a whole, and may this request go now?

A pure state machine (time passed in, monotonic seconds) fed with the outcome of every request
to one endpoint. Retries are for faults of a batch; an outage is a fault of the endpoint, and
spending each event's retry budget on it would turn a long outage into a flood of dead letters.
So the machine tells the delivery three things:

- **State** (``healthy`` / ``degraded`` / ``down`` / ``paused``): ``degraded`` after one failed
  request in a row, ``down`` after ``down_after_failures`` consecutive failures spanning at least
  ``down_after_s`` (both, so neither a burst of concurrent failures nor a slow trickle alone
  declares an outage); ``paused`` on a systemic answer (a bad token or key, design.md's *pause*
  codes) at once. Any answer that shows the endpoint working (a success, or an answer about the
  events themselves: 3004, 404, 413) resets the count.
- **Whether a failure counts** against the events' retry budget: only when the endpoint is not
  down or paused after it. Attempts and tier moves thus count only failures of a working endpoint.
  The start of an outage looks like a working endpoint's failures until it is declared (up to
  ``down_after_s``), so :meth:`EndpointHealth.failing_since` tells a batch whether anything has
  worked since its own first failure: if nothing has, it waits instead of taking a retry tier,
  for at most twice ``down_after_s`` from the first failure of the run.
- **Admission**: while down or paused nothing is sent but one probe at a time, at an interval
  that doubles from ``probe_interval_s`` up to ``probe_interval_max_s``. A probe that gets any
  answer other than a failure ends the outage; the concurrency then ramps from one request to
  the full ``max_in_flight`` over ``ramp_s`` so the catch-up does not trip the endpoint's limits.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class State(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    PAUSED = "paused"


class Outcome(enum.Enum):
    """What one request said about the endpoint (not about its events)."""

    WORKING = "working"  # a success, or an answer about the events themselves
    FAILED = "failed"  # transport error, timeout, 5xx, throttled: the endpoint is struggling
    SYSTEMIC = "systemic"  # an answer every event would get (design.md's pause codes)


class Admission(enum.Enum):
    SEND = "send"
    PROBE = "probe"  # send a small batch to find out whether the endpoint is back
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    down_after_failures: int = 10
    down_after_s: float = 5.0
    probe_interval_s: float = 1.0
    probe_interval_max_s: float = 30.0
    ramp_s: float = 10.0


class EndpointHealth:
    def __init__(self, settings: HealthSettings, max_in_flight: int) -> None:
        self.settings = settings
        self.max_in_flight = max_in_flight
        self.state = State.HEALTHY
        self.cause = ""  # why down or paused: the last failure's description
        self.cause_code: int | None = None
        self.since: float | None = None  # when the current down/paused spell began
        self._failures = 0
        self._first_failure_at = 0.0
        self._probe_in_flight = False
        self._probes = 0  # failed probes in this spell: the interval doubles with each
        self._next_probe_at = 0.0
        self._recovered_at: float | None = None
        self.changes = 0  # bumped on every state change, so waiters can tell
        self.outages = 0  # down or paused spells begun: a batch's tries before one are given back

    @property
    def blocked(self) -> bool:
        """Down or paused: only probes may be sent."""
        return self.state in (State.DOWN, State.PAUSED)

    def observe(
        self,
        outcome: Outcome,
        now: float,
        *,
        probe: bool = False,
        cause: str = "",
        code: int | None = None,
    ) -> bool:
        """Record a request's outcome; True when a failure counts against the events' budget."""
        if probe:
            self._probe_in_flight = False
        if outcome is Outcome.WORKING:
            self._failures = 0
            if self.blocked:
                self._recovered_at = now
                self._set(State.HEALTHY, "", None, None)
            elif self.state is State.DEGRADED:
                self._set(State.HEALTHY, "", None, None)
            return False
        if outcome is Outcome.SYSTEMIC:
            if self.state is not State.PAUSED:
                self._enter_blocked(State.PAUSED, now, cause, code)
            elif probe:
                self._schedule_probe(now)
            self.cause, self.cause_code = cause, code
            return False
        # FAILED
        if self.blocked:
            if probe:
                if self.state is State.PAUSED:  # the systemic fault is gone; another took its place
                    self._set(State.DOWN, cause, code, self.since)
                self._schedule_probe(now)
            return False
        if self._failures == 0:
            self._first_failure_at = now
        self._failures += 1
        if (
            self._failures >= self.settings.down_after_failures
            and now - self._first_failure_at >= self.settings.down_after_s
        ):
            self._enter_blocked(State.DOWN, now, cause, code)
            return False
        if self.state is State.HEALTHY:
            self._set(State.DEGRADED, cause, code, None)
        return True

    def failing_since(self, moment: float, now: float) -> bool:
        """Whether every request since ``moment`` failed, in a run of failures (not yet an
        outage) that began at or before it and may still be declared one.

        False while down or paused, once any request shows the endpoint working, and once the
        run is twice ``down_after_s`` old: an outage not declared by then is not coming (the
        failures are too few, e.g. ``down_after_failures`` set out of reach), so they count.
        """
        return (
            not self.blocked
            and self._failures > 0
            and self._first_failure_at <= moment
            and now - self._first_failure_at < 2 * self.settings.down_after_s
        )

    def admit(self, now: float) -> Admission:
        """May a request go now? While blocked, one probe at a time once it is due."""
        if not self.blocked:
            return Admission.SEND
        if self._probe_in_flight or now < self._next_probe_at:
            return Admission.WAIT
        self._probe_in_flight = True
        return Admission.PROBE

    def probe_abandoned(self) -> None:
        """A granted probe was not sent (its sender stopped): let another one go."""
        self._probe_in_flight = False

    def next_probe_in(self, now: float) -> float:
        """Seconds until a probe may go (0 when one may go now); inf when not blocked."""
        if not self.blocked:
            return math.inf
        return max(0.0, self._next_probe_at - now)

    def allowed_in_flight(self, now: float) -> int:
        """Concurrent requests allowed: ramping up after an outage, else ``max_in_flight``."""
        if self.blocked:
            return 1
        if self._recovered_at is None or self.settings.ramp_s <= 0:
            return self.max_in_flight
        share = (now - self._recovered_at) / self.settings.ramp_s
        if share >= 1.0:
            self._recovered_at = None
            return self.max_in_flight
        return max(1, min(self.max_in_flight, 1 + int(share * self.max_in_flight)))

    def _enter_blocked(self, state: State, now: float, cause: str, code: int | None) -> None:
        self.outages += 1
        self._probes = 0
        self._recovered_at = None
        self._next_probe_at = now + self.settings.probe_interval_s
        self._set(state, cause, code, now)

    def _schedule_probe(self, now: float) -> None:
        self._probes += 1
        interval = min(
            self.settings.probe_interval_max_s,
            self.settings.probe_interval_s * 2 ** min(self._probes, 30),
        )
        self._next_probe_at = now + interval

    def _set(self, state: State, cause: str, code: int | None, since: float | None) -> None:
        if state is not self.state:
            self.changes += 1
        self.state = state
        self.cause = cause
        self.cause_code = code
        self.since = since
