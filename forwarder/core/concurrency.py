"""Adaptive concurrency: how many requests the endpoint takes at once, found by AIMD.

Pure (time passed in, loop seconds). Vector's adaptive request concurrency is the reference:
the round-trip time's moving mean and deviation (EWMAs) are kept over the requests that were
actually sent and answered as working (never backoff sleeps, never probes), in windows one
mean RTT long, and the limit moves:

- **down**, multiplied by ``decrease_ratio`` (at least by one), at once on back-pressure (a
  429, a retriable 5xx, a timeout: :meth:`Concurrency.back_pressure`), but only for requests
  sent after the last decrease: one overload answered by a burst of 429s costs one decrease,
  not one per answer. Also at the end of ``slow_windows`` windows in a row whose mean RTT
  rose above the moving mean by more than ``deviation_scale`` times its usual spread (the
  deviation, but at least ``min_rise`` of the mean, so that a steady endpoint, whose
  deviation is near zero, is not read as overloaded by jitter: 50 %).
- **up** by one at the end of a window in which the limit was in use (a request went out with
  the limit reached), no back-pressure arrived and the RTT stayed near the mean (within that
  spread).

Where this departs from Vector, measurement said so (``tests/unit/test_adaptive_concurrency.py``,
``bench/bench_concurrency.py``): Vector decreases at the end of the window, and then climbs
straight back to the limit that was refused, so an endpoint that refuses at once (a 429 costs
no service time) answers the slot above its capacity with a 429 after every other window, and
the freed slot refills and is refused again within the same window: most requests were 429s in
the model test. Here the decrease is immediate, and the limit refused (by back-pressure, not by a slow RTT) is
remembered as a *ceiling*: the limit climbs to one below it, and goes up to it only as a *probe* after
``probe_windows`` clean windows there, the wait doubling with each refused probe (up to
``probe_windows_max``). A clean window at or above the ceiling forgets it: the capacity grew.
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
    min_rise: float = 0.2  # an RTT rise below this share of the mean is noise, never overload
    min_window_s: float = 0.01  # the shortest window, whatever the RTT
    slow_windows: int = 2  # consecutive windows with a high RTT that make a decrease
    probe_windows: int = 8  # clean windows below a refused limit before trying it again
    probe_windows_max: int = 64


class Concurrency:
    def __init__(self, settings: ConcurrencySettings, now: float) -> None:
        self.settings = settings
        self.limit = max(1, min(settings.initial, settings.maximum))
        self.rtt_mean: float | None = None
        self.rtt_deviation = 0.0
        self.changes = 0  # bumped on every change of the limit
        self.ceiling: int | None = None  # the last limit refused by back-pressure
        self.slow_windows = 0  # consecutive windows with the RTT well above its mean
        self.decreases = {"back_pressure": 0, "rtt": 0}
        self._probe_after = settings.probe_windows
        self._clean = 0  # clean windows in use just below the ceiling
        self._decreased_at = -math.inf
        self._window_from = now
        self._window_rtt_sum = 0.0
        self._window_samples = 0
        self._in_use = False

    def sent(self, in_flight: int) -> None:
        """A request went out with ``in_flight`` requests (itself included) in flight."""
        if in_flight >= self.limit:
            self._in_use = True

    def answered(self, rtt_s: float, now: float) -> None:
        """A request sent and answered as working took ``rtt_s``."""
        self._window_rtt_sum += rtt_s
        self._window_samples += 1
        if now - self._window_from >= max(self.rtt_mean or 0.0, self.settings.min_window_s):
            self._close(now)

    def back_pressure(self, sent_at: float, now: float) -> None:
        """The endpoint said it is overloaded (429, retriable 5xx, timeout) to a request sent
        at ``sent_at``."""
        if sent_at >= self._decreased_at:
            self._decrease(now, "back_pressure")

    def _decrease(self, now: float, why: str) -> None:
        s = self.settings
        self.decreases[why] += 1
        if why == "back_pressure":
            if self.ceiling is not None and self.limit >= self.ceiling:
                # A probe refused: wait longer before the next one.
                self._probe_after = min(self._probe_after * 2, s.probe_windows_max)
            # Only a refusal says where the capacity is: a slow RTT (a stall of the network
            # or the process, as often as queueing) keeps what a refusal taught.
            self.ceiling = self.limit
        self._clean = 0
        self._set(min(self.limit - 1, math.floor(self.limit * s.decrease_ratio)))
        self._decreased_at = now
        self._new_window(now)

    def _close(self, now: float) -> None:
        s = self.settings
        rtt = self._window_rtt_sum / self._window_samples
        mean = self.rtt_mean
        near = 0.0 if mean is None else max(self.rtt_deviation, s.min_rise * mean)
        if mean is not None and rtt > mean + s.deviation_scale * near:
            # Slow: one window may be a stall (a pause of the process, a slow connection);
            # the mean is held until enough in a row say the endpoint is queueing.
            self.slow_windows += 1
            if self.slow_windows < s.slow_windows:
                self._new_window(now)
                return
        else:
            self.slow_windows = 0
        # The window is judged against the mean and spread before it.
        if mean is None:
            self.rtt_mean = rtt
        else:
            self.rtt_deviation += s.ewma_alpha * (abs(rtt - mean) - self.rtt_deviation)
            self.rtt_mean = mean + s.ewma_alpha * (rtt - mean)
        if self.slow_windows:
            self.slow_windows = 0
            self._decrease(now, "rtt")
            return
        if self._in_use and (mean is None or rtt <= mean + near):
            self._grow()
        self._new_window(now)

    def _grow(self) -> None:
        ceiling = self.ceiling
        if ceiling is not None and self.limit >= ceiling:
            self.ceiling = None  # a clean window at the refused limit: the capacity grew
            self._probe_after = self.settings.probe_windows
        elif ceiling is not None and self.limit + 1 >= ceiling:
            self._clean += 1
            if self._clean < self._probe_after:
                return
            self._clean = 0
        self._set(self.limit + 1)

    def _new_window(self, now: float) -> None:
        self._window_from = now
        self._window_rtt_sum = 0.0
        self._window_samples = 0
        self._in_use = False

    def _set(self, limit: int) -> None:
        limit = max(1, min(limit, self.settings.maximum))
        if limit != self.limit:
            self.limit = limit
            self.changes += 1
