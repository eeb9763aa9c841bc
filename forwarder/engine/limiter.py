"""Admission of requests to the endpoint: the in-flight cap, its ramp, and the token bucket.

One ``Limiter`` per endpoint, shared by every sender. It lives here rather than in the HTTP
adapter so that the same limit governs the real endpoint and the tests' fakes: a model test can
then check that no window ever holds more requests than the rate and the burst allow.
When the endpoint says ``Retry-After``, the bucket is blocked until then, so every sender waits,
not just the one that was told.

The in-flight cap is the smaller of the post-outage ramp (``EndpointHealth.allowed_in_flight``)
and, with ``limits.max_in_flight = "adaptive"``, the AIMD limit (``forwarder.core.concurrency``),
which the delivery feeds with each request's answer through :meth:`Limiter.observed`. A sender
over the cap waits until a request ends or the limit grows (or, while the ramp holds it back,
polls: the ramp grows with time).
"""

from __future__ import annotations

import asyncio

import structlog

from forwarder.core.classify import SendResult
from forwarder.core.concurrency import Concurrency
from forwarder.core.health import EndpointHealth, Outcome
from forwarder.core.token_bucket import TokenBucket
from forwarder.engine.waiters import Waiters
from forwarder.telemetry.metrics import Metrics

# How often a sender held back by the post-outage ramp looks again: the ramp grows with time.
RAMP_POLL_S = 0.05
# The shortest wait for a token: a bucket a rounding error short of a token would otherwise ask
# for a wait below the clock's resolution, and the sender would spin without time passing.
MIN_WAIT_S = 0.001
# At most one log line about the adaptive limit per this many seconds.
LIMIT_LOG_INTERVAL_S = 10.0


def back_pressure(outcome: Outcome, result: SendResult) -> bool:
    """The endpoint said it is overloaded: a 429, a retriable 5xx or a timeout (not a refused
    connection or a reset: those say it is down or the network failed, not that it is full)."""
    if outcome is not Outcome.FAILED:
        return False
    status = result.status
    if status is None:
        return "Timeout" in (result.transport_error or "")
    return status == 429 or status >= 500


class Limiter:
    def __init__(
        self,
        bucket: TokenBucket,
        health: EndpointHealth,
        concurrency: Concurrency | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.bucket = bucket
        self._health = health
        self.concurrency = concurrency
        self._metrics = metrics
        self._held = 0  # slots taken: waiting for a token, or in flight
        self.in_flight = 0
        self._waiters = Waiters()
        self._log = structlog.get_logger("forwarder.engine.limiter")
        self._logged_limit = 0
        self._logged_at = float("-inf")
        if metrics is not None:
            metrics.concurrency_limit.set(self.limit)

    @property
    def limit(self) -> int:
        """Requests allowed in flight, the post-outage ramp aside."""
        c = self.concurrency
        return self._health.max_in_flight if c is None else c.limit

    async def acquire(self) -> None:
        """Wait for a slot under the (ramped, maybe adaptive) in-flight cap, then for a token."""
        loop = asyncio.get_running_loop()
        health = self._health
        while True:
            ramp = health.allowed_in_flight(loop.time())
            c = self.concurrency
            if self._held < (ramp if c is None or c.limit > ramp else c.limit):
                break
            # A release or a higher limit wakes one; the ramp grows with time, so poll it.
            await self._waiters.wait(RAMP_POLL_S if ramp < health.max_in_flight else None)
        self._held += 1
        try:
            while True:
                wait = self.bucket.try_take(loop.time())
                if wait <= 0:
                    break
                await asyncio.sleep(max(wait, MIN_WAIT_S))
        except BaseException:
            self._held -= 1
            self._waiters.wake_one()
            raise
        self.in_flight += 1
        if self.concurrency is not None:
            self.concurrency.sent(self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self._held -= 1
        self._waiters.wake_one()

    def observed(
        self, outcome: Outcome, result: SendResult, destination: str, sent_at: float, now: float
    ) -> bool:
        """Feed the adaptive limit with a request's answer (not a probe's); True when the limit
        changed. Failures while the endpoint is down or paused, or charged to a degraded
        destination, are no sign of overload: they are left out."""
        c = self.concurrency
        if c is None:
            return False
        before = c.limit
        if outcome is Outcome.WORKING:
            c.answered(now - sent_at, now)
        elif (
            back_pressure(outcome, result)
            and not self._health.blocked
            and not self._health.destinations.degraded(destination)
        ):
            c.back_pressure(sent_at, now)
        if self._metrics is not None:
            self._metrics.request_rtt_mean.set(c.rtt_mean or 0.0)
        if c.limit == before:
            return False
        for _ in range(c.limit - before):  # as many senders as the limit grew
            self._waiters.wake_one()
        self._changed(c, before, now)
        return True

    def _changed(self, c: Concurrency, before: int, now: float) -> None:
        if self._metrics is not None:
            self._metrics.concurrency_limit.set(c.limit)
        notable = abs(c.limit - self._logged_limit) >= max(2, self._logged_limit // 4)
        if notable and now - self._logged_at >= LIMIT_LOG_INTERVAL_S:
            self._log.info(
                "concurrency_limit_changed",
                limit=c.limit,
                previous=before,
                last_logged=self._logged_limit,
                rtt_mean_ms=round((c.rtt_mean or 0.0) * 1000, 1),
                in_flight=self.in_flight,
            )
            self._logged_limit, self._logged_at = c.limit, now

    def slow_down(self, seconds: float) -> None:
        """The endpoint asked for a pause (``Retry-After``): hold every request back."""
        self.bucket.block_until(asyncio.get_running_loop().time() + seconds)
