"""The retry schedule: exponential backoff with full jitter, capped (pure; randomness passed in).

Full jitter (a uniform wait in [0, min(cap, base * 2**n)]) spreads a crowd of failed requests
over the whole window instead of letting them retry in lock-step.

``Retry-After`` is parsed here too (time passed in): delta seconds or an HTTP date. The
delivery caps what it honours at ``retry.max_retry_after_s``: the header holds back the whole
endpoint, and a ``Retry-After: 86400`` must not stop it for a day.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable

# Longer than any wait a caller honours (retry.max_retry_after_s is at most an hour): a
# 400-digit value must still be a finite number.
MAX_RETRY_AFTER_S = 10.0**9


def read_retry_after(value: str | None, now: float) -> tuple[float | None, bool]:
    """``Retry-After`` as (seconds, unreadable): delta seconds or an HTTP date; never raises.

    ``(None, False)``: absent. ``(None, True)``: present but neither form, which the caller
    counts and logs; the answer is then handled as if it had none. Digits are ASCII digits
    only (``"²".isdigit()`` is true and ``float("²")`` raises). A date already past means now
    (0). ``now`` is epoch seconds.
    """
    if not value:
        return None, False
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S), False
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - now
    except (TypeError, ValueError, OverflowError, IndexError):
        # What the standard library raises for text that is not a date, or one out of range.
        return None, True
    if math.isnan(seconds):
        return None, True
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S), False


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``Retry-After``, or None when absent or unreadable (see ``read_retry_after``)."""
    return read_retry_after(value, now)[0]


def backoff_s(
    attempt: int, initial_s: float, max_s: float, uniform: Callable[[float, float], float]
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    # The exponent is capped: an int power past ~1023 overflows a float, and a topic can fail
    # for thousands of attempts in a long broker outage.
    ceiling = min(max_s, initial_s * (2.0 ** min(max(0, attempt - 1), 60)))
    return uniform(0.0, ceiling)


def retry_delay_s(
    attempt: int,
    initial_s: float,
    max_s: float,
    uniform: Callable[[float, float], float],
    retry_after_s: float | None,
) -> float:
    """The wait before the next try: the endpoint's ``Retry-After`` when it gave one, at least."""
    delay = backoff_s(attempt, initial_s, max_s, uniform)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
