"""A two-level rate limit: a sustained rate plus a burst reserve (pure; time passed in).

The personalization API allows 100 requests/s per service, and bursts to 200 requests/s for up
to 10 s (design.md section 7). Two token buckets, and a request takes a token from both:

- the *peak* bucket refills at ``peak`` per second and holds only ``peak * smoothing_s``
  tokens (at least one), so requests never go out faster than the burst rate, even right after
  a quiet spell. A client passes ``smoothing_s=0`` (requests evenly spaced) and the server
  (the sandbox) keeps some slack: requests sent evenly arrive bunched (a new connection delays
  the first ones), and a server as strict as its client would answer 429 to that jitter;
- the *reserve* bucket refills at the sustained ``rate`` and holds ``(peak - rate) *
  burst_seconds`` tokens: spending at ``peak`` drains it at ``peak - rate`` per second, so a full
  reserve lasts exactly ``burst_seconds``; after that, the sustained rate is all there is.

Hence in any window of ``w`` seconds at most ``min(peak_capacity + peak * w, reserve_capacity +
rate * w)`` requests go out (``bound``): the property the unit tests check with hypothesis, and the
same class is the sandbox's server-side limit.
"""

from __future__ import annotations

PEAK_SMOOTHING_S = 0.05


class ReserveLimiter:
    def __init__(
        self,
        rate: float,
        peak: float,
        burst_seconds: float,
        smoothing_s: float = PEAK_SMOOTHING_S,
    ) -> None:
        if rate <= 0 or peak < rate or burst_seconds < 0:
            raise ValueError("need rate > 0, peak >= rate and burst_seconds >= 0")
        self.rate = rate
        self.peak = peak
        self.burst_seconds = burst_seconds
        self.peak_capacity = max(1.0, peak * smoothing_s)
        self.reserve_capacity = max(1.0, (peak - rate) * burst_seconds)
        self._peak_tokens = self.peak_capacity
        self._reserve_tokens = self.reserve_capacity
        self._updated: float | None = None
        self._blocked_until = float("-inf")

    def bound(self, window_s: float) -> float:
        """The most requests this limiter lets through in any window of ``window_s`` seconds."""
        return min(
            self.peak_capacity + self.peak * window_s,
            self.reserve_capacity + self.rate * window_s,
        )

    @property
    def reserve(self) -> float:
        """Tokens left in the burst reserve (for metrics and tests)."""
        return self._reserve_tokens

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            elapsed = now - self._updated
            self._peak_tokens = min(self.peak_capacity, self._peak_tokens + elapsed * self.peak)
            self._reserve_tokens = min(
                self.reserve_capacity, self._reserve_tokens + elapsed * self.rate
            )
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_take(self, now: float) -> float:
        """Take one request's tokens and return 0.0, or take nothing and return the wait in s."""
        if now < self._blocked_until:
            return self._blocked_until - now
        self._refill(now)
        if self._peak_tokens >= 1.0 and self._reserve_tokens >= 1.0:
            self._peak_tokens -= 1.0
            self._reserve_tokens -= 1.0
            return 0.0
        # Never report a zero wait for a refused take (floating-point rounding).
        return max(
            (1.0 - self._peak_tokens) / self.peak,
            (1.0 - self._reserve_tokens) / self.rate,
            1e-6,
        )

    def block_until(self, until: float) -> None:
        """The service said ``Retry-After``: nothing goes out before ``until``.

        The reserve is emptied too: after a 429, requests resume at the sustained rate.
        """
        self._blocked_until = max(self._blocked_until, until)
        self._peak_tokens = 0.0
        self._reserve_tokens = 0.0
        self._updated = max(self._updated if self._updated is not None else until, until)


def busiest_window(times: list[float], window_s: float) -> int:
    """The most of ``times`` (seconds) inside any one window of ``window_s`` seconds.

    What ``bound`` limits: tests and the benchmark check the requests a server saw against it.
    """
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
