"""Adaptive concurrency: how many requests the endpoint takes at once, found by AIMD.

Pure (time passed in, loop seconds). Vector's adaptive request concurrency is the reference:
the round-trip time's moving mean and deviation (EWMAs) are kept over the requests that were
actually sent and answered as working (never backoff sleeps, never probes), and at the end of
each window (one mean RTT long) the limit moves:

- **down**, multiplied by ``decrease_ratio`` (at least by one), when back-pressure arrived in
  the window (a 429, a retriable 5xx, a timeout: :meth:`Concurrency.back_pressure`) or the
  window's mean RTT rose above the moving mean by more than ``deviation_scale`` deviations
  (and by at least ``min_rise`` of the mean, so that a perfectly steady endpoint, whose
  deviation is near zero, is not read as overloaded by the clock's jitter);
- **up** by one when the limit was in use (a request went out with the limit reached), no
  back-pressure arrived and the window's RTT stayed near the mean (within one deviation, or
  ``min_rise``);
- otherwise it stays.

At most one change per window, so one burst of 429s answering the requests of one window
costs one decrease, not one per answer. What counts as back-pressure is the caller's to say:
the delivery leaves out failures while the endpoint is down or paused and those charged to a
degraded destination (``forwarder.delivery``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConcurrencySettings:
    maximum: int = 64
    initial: int = 1
    decrease_ratio: float = 0.9
    ewma_alpha: float = 0.4  # weight of the newest window in the RTT's mean and deviation
    deviation_scale: float = 2.5
    min_rise: float = 0.1  # an RTT rise below this share of the mean is noise, never overload
    min_window_s: float = 0.01  # the shortest window, whatever the RTT


class Concurrency:
    def __init__(self, settings: ConcurrencySettings, now: float) -> None:
        self.settings = settings
        self.limit = max(1, min(settings.initial, settings.maximum))
        self.rtt_mean: float | None = None
        self.rtt_deviation = 0.0
        self.changes = 0  # bumped on every change of the limit
        self._window_from = now
        self._window_rtt_sum = 0.0
        self._window_samples = 0
        self._in_use = False
        self._pressed = False

    def sent(self, in_flight: int) -> None:
        """A request went out with ``in_flight`` requests (itself included) in flight."""
        if in_flight >= self.limit:
            self._in_use = True

    def answered(self, rtt_s: float, now: float) -> None:
        """A request sent and answered as working took ``rtt_s``."""
        self._window_rtt_sum += rtt_s
        self._window_samples += 1
        self._maybe_close(now)

    def back_pressure(self, now: float) -> None:
        """The endpoint said it is overloaded (429, retriable 5xx, timeout)."""
        self._pressed = True
        self._maybe_close(now)

    def _window_s(self) -> float:
        mean = self.rtt_mean if self.rtt_mean is not None else 0.0
        return max(mean, self.settings.min_window_s)

    def _maybe_close(self, now: float) -> None:
        if now - self._window_from < self._window_s():
            return
        if self._window_samples == 0 and not self._pressed:
            return
        s = self.settings
        rtt = self._window_rtt_sum / self._window_samples if self._window_samples else None
        mean = self.rtt_mean
        near = 0.0 if mean is None else max(self.rtt_deviation, s.min_rise * mean)
        if self._pressed or (
            rtt is not None and mean is not None and rtt > mean + s.deviation_scale * near
        ):
            self._set(min(self.limit - 1, math.floor(self.limit * s.decrease_ratio)))
        elif self._in_use and rtt is not None and (mean is None or rtt <= mean + near):
            self._set(self.limit + 1)
        if rtt is not None:
            if mean is None:
                self.rtt_mean = rtt
            else:
                self.rtt_deviation += s.ewma_alpha * (abs(rtt - mean) - self.rtt_deviation)
                self.rtt_mean = mean + s.ewma_alpha * (rtt - mean)
        self._window_from = now
        self._window_rtt_sum = 0.0
        self._window_samples = 0
        self._in_use = False
        self._pressed = False

    def _set(self, limit: int) -> None:
        limit = max(1, min(limit, self.settings.maximum))
        if limit != self.limit:
            self.limit = limit
            self.changes += 1
