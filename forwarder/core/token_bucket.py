"""A token bucket: the rate limit shared by every request to one endpoint.

Pure: the caller passes the current monotonic time in seconds, so the same object serves
the forwarder's HTTP sink and the sandbox's server-side limit, and tests need no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second refill a bucket holding at most ``burst`` tokens.

    A ``rate`` of 0 or less disables the limit: every take succeeds at once.
    """

    rate: float
    burst: float
    _tokens: float = field(init=False)
    _updated: float | None = field(init=False, default=None)
    _blocked_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.burst = max(self.burst, 1.0)
        self._tokens = self.burst

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_take(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0.0; else take nothing and return the wait.

        The wait is how many seconds until the tokens will be there, counting any block set by
        :meth:`block_until` (a ``Retry-After`` from the endpoint).
        """
        if now < self._blocked_until:
            return self._blocked_until - now
        if self.unlimited:
            return 0.0
        self._refill(now)
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate

    def block_until(self, until: float) -> None:
        """Hold every taker back until ``until``: the endpoint asked us to slow down."""
        self._blocked_until = max(self._blocked_until, until)
        # Drain the bucket so requests resume at the steady rate, not in one burst.
        self._tokens = 0.0
        self._updated = max(self._updated or until, until)
