"""The retry schedule: exponential backoff with full jitter, capped (pure; randomness passed in).

Full jitter (a uniform wait in [0, min(cap, base * 2**n)]) spreads a crowd of failed requests
over the whole window instead of letting them retry in lock-step.

``Retry-After`` is parsed here too (time passed in): delta seconds or an HTTP date. The
delivery caps what it honours at ``retry.max_retry_after_s``: the header holds back the whole
endpoint, and a ``Retry-After: 86400`` must not stop it for a day.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``Retry-After``: delta seconds or an HTTP date; None when absent or bad.

    A date already past means now (0). ``now`` is epoch seconds.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


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
