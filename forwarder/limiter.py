"""Admission of requests to the endpoint: the in-flight cap, its ramp, and the token bucket.

One ``Limiter`` per endpoint, shared by every sender. It lives here rather than in the HTTP
adapter so that the same limit governs the real endpoint and the tests' fakes: a model test can
then check that no window ever holds more requests than the rate and the burst allow.
When the endpoint says ``Retry-After``, the bucket is blocked until then, so every sender waits,
not just the one that was told.
"""

from __future__ import annotations

import asyncio

from forwarder.core.health import EndpointHealth
from forwarder.core.token_bucket import TokenBucket

# How often a sender held back by the post-outage ramp looks again: the ramp grows with time.
RAMP_POLL_S = 0.05
# The shortest wait for a token: a bucket a rounding error short of a token would otherwise ask
# for a wait below the clock's resolution, and the sender would spin without time passing.
MIN_WAIT_S = 0.001


class Limiter:
    def __init__(self, bucket: TokenBucket, health: EndpointHealth) -> None:
        self.bucket = bucket
        self._health = health
        self._slots = asyncio.Semaphore(health.max_in_flight)
        self.in_flight = 0

    async def acquire(self) -> None:
        """Wait for a slot under the (ramped) in-flight cap, then for a token."""
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        try:
            while True:
                now = loop.time()
                # Both are functions of time (the ramp grows, tokens refill): nothing to wait on.
                if self.in_flight >= self._health.allowed_in_flight(now):
                    wait = RAMP_POLL_S
                else:
                    wait = self.bucket.try_take(now)
                    if wait <= 0:
                        break
                await asyncio.sleep(max(wait, MIN_WAIT_S))
        except BaseException:
            self._slots.release()
            raise
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    def slow_down(self, seconds: float) -> None:
        """The endpoint asked for a pause (``Retry-After``): hold every request back."""
        self.bucket.block_until(asyncio.get_running_loop().time() + seconds)
