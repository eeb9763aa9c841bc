"""Endpoint health: is the endpoint failing as a whole, and may this request go now?

A pure state machine (time passed in, monotonic seconds) fed with the outcome of every request
to one endpoint. A fault is charged to the smallest scope that explains it (event, batch,
destination, endpoint), and only that scope slows down. This machine holds the two widest:

- **Destinations** (``forwarder.core.destinations``): a ``database.table`` whose requests, from
  two batches or more, have failed for ``down_after_s`` while another's succeed is *degraded*; its failures are its own
  and never count towards an outage of the endpoint. A failure sent before something worked
  is no sign of an outage either.
- **The endpoint** (``healthy`` / ``degraded`` / ``down`` / ``paused``): ``degraded`` after one
  failed request in a row, ``down`` when a run of failures (nothing working anywhere since the
  first of them was *sent*, so requests that hang to their timeout count from when they went
  out) spans more than one batch, at least ``down_after_s``, and either ``down_after_failures``
  failures or twice ``down_after_s``; a connection the host refuses declares it from one batch.
  ``paused`` on a systemic answer (a bad token or key, design.md's *pause* codes) at once. Any
  answer that shows the endpoint working (a success, or an answer about the events themselves:
  3004, 404, 413) ends the run.
- **Whether a failure is resolved**: a failure is the batch's own (charged against its retry
  budget) once anything has worked since it was sent, at once when its destination is
  degraded, and after twice ``down_after_s`` when the batch failed alone (a quiet topic:
  nothing else is tried, so no outage can be declared); until
  then it may be the start of an outage (:meth:`EndpointHealth.unresolved`), and a batch whose
  budget only such failures would spend holds at its last try instead of taking a retry tier.
- **Admission**: while down or paused nothing is sent but one probe at a time, at an interval
  that doubles from ``probe_interval_s`` up to ``probe_interval_max_s`` (a few seconds, so
  recovery is noticed soon). A probe that gets any answer other than a failure ends the outage;
  the concurrency then ramps from one request to the full ``max_in_flight`` over ``ramp_s`` so
  the catch-up does not trip the endpoint's limits.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from forwarder.core.destinations import Destinations


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
    probe_interval_max_s: float = 3.0
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
        self._run_from = 0.0  # send time of the run's first failed request
        self._run_batches: set[str] = set()  # batches failed in the run (two are enough)
        self._run_failed_at = -math.inf  # the last failure that counted towards the run
        self.destinations = Destinations(settings.down_after_s)
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
        destination: str = "",
        batch: str = "",
        sent_at: float | None = None,
        unreachable: bool = False,
        suspect: bool = False,
    ) -> None:
        """Record a request's outcome: ``sent_at`` when it went out (``now`` if not given),
        ``batch`` which batch it carried (the ``uuid`` of its first event, the same when it
        comes back from a retry tier), ``unreachable`` a refused connection, ``suspect`` a
        batch whose events were already shown to fail on their own."""
        sent = now if sent_at is None else sent_at
        if probe:
            self._probe_in_flight = False
        if outcome is Outcome.WORKING:
            self.destinations.working(destination, now)
            self._failures = 0
            self._run_batches.clear()
            if self.blocked:
                self._recovered_at = now
                self._set(State.HEALTHY, "", None, None)
            elif self.state is State.DEGRADED:
                self._set(State.HEALTHY, "", None, None)
            return
        if outcome is Outcome.SYSTEMIC:
            if self.state is not State.PAUSED:
                self._enter_blocked(State.PAUSED, now, cause, code)
            elif probe:
                self._schedule_probe(now)
            self.cause, self.cause_code = cause, code
            return
        # FAILED
        self.destinations.failed(destination, sent, batch)
        if sent < self.destinations.worked_at and not self.blocked:
            return  # something worked after it was sent: no sign of an outage
        if self.blocked:
            if probe:
                if self.state is State.PAUSED:  # the systemic fault is gone; another took its place
                    self._set(State.DOWN, cause, code, self.since)
                self._schedule_probe(now)
            return
        if suspect or self.destinations.degraded(destination):
            return  # its own fault, or its table's: other requests worked
        if self._failures == 0:
            self._run_from = sent
        self._failures += 1
        self._run_failed_at = now
        if len(self._run_batches) < 2:
            self._run_batches.add(batch)
        if self._outage(now, unreachable):
            self._enter_blocked(State.DOWN, now, cause, code)
            return
        if self.state is State.HEALTHY:
            self._set(State.DEGRADED, cause, code, None)

    def _outage(self, now: float, unreachable: bool) -> bool:
        s = self.settings
        age = now - self._run_from
        return (
            (len(self._run_batches) >= 2 or unreachable)
            and age >= s.down_after_s
            and (self._failures >= s.down_after_failures or age >= 2 * s.down_after_s)
        )

    def unresolved(self, destination: str, since: float, batch: str, now: float) -> bool:
        """Whether failures of ``batch`` to ``destination`` sent at or after ``since`` may
        still be the start of an outage: nothing has worked anywhere since, the destination is
        not degraded (failing alone), no outage is declared (while one is, the delivery waits,
        it holds no try), and the batch has not failed alone for twice ``down_after_s``.
        Otherwise they were the batch's own, its events' or its destination's.

        The last bound is for a batch failing on a quiet topic (no other batch being tried, or
        the others' failures stopped): an outage can never be declared from its failures, and
        holding it for good would wedge it; so after that long it walks its schedule.
        """
        if self.blocked or self.destinations.worked_at >= since:
            return False
        if self.destinations.degraded(destination):
            return False
        # No other batch is failing (none in the run, or none since these failures began), or
        # the run has gone quiet: no outage can be declared from what fails now.
        bound = 2 * self.settings.down_after_s
        alone = (
            self._run_batches <= {batch}
            or self._run_failed_at < since
            or now - self._run_failed_at >= bound
        )
        return not (alone and now - since >= bound)

    def failing_for(self, now: float) -> float:
        """Seconds since the current run of failures began (0 when none)."""
        return now - self._run_from if self._failures else 0.0

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
        """Seconds until a probe may go (0 when one may go now); inf when not blocked or while
        a probe is in flight: its answer, not the clock, decides what comes next."""
        if not self.blocked or self._probe_in_flight:
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
