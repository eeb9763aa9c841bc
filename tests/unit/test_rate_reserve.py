"""The two-level limiter: sustained rate plus burst reserve, never more than allowed in any window."""

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core.rate_reserve import ReserveLimiter, busiest_window

EPS = 1e-6


def _accepted(limiter: ReserveLimiter, attempts: list[float]) -> list[float]:
    return [t for t in attempts if limiter.try_take(t) == 0.0]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 50),
    extra=st.integers(0, 50),
    burst_seconds=st.integers(0, 5),
    gaps=st.lists(st.floats(0.0, 0.2, allow_nan=False), min_size=1, max_size=600),
    window=st.sampled_from([0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0]),
    smoothing=st.sampled_from([0.0, 0.05, 0.2]),
)
def test_never_more_than_the_bound_in_any_window(
    rate: int, extra: int, burst_seconds: int, gaps: list[float], window: float, smoothing: float
) -> None:
    limiter = ReserveLimiter(rate, rate + extra, burst_seconds, smoothing)
    attempts, now = [], 0.0
    for gap in gaps:
        now += gap
        attempts.append(now)
    accepted = _accepted(limiter, attempts)
    assert busiest_window(accepted, window) <= limiter.bound(window) + EPS


def test_the_seed_limits_allow_200_per_second_for_10_seconds_then_100() -> None:
    limiter = ReserveLimiter(100, 200, 10)
    # Ask 1,000 times a second for 20 s.
    attempts = [i / 1000 for i in range(20_000)]
    accepted = _accepted(limiter, attempts)
    first_ten = sum(1 for t in accepted if t < 10)
    last_five = sum(1 for t in accepted if t >= 15)
    assert 1_950 <= first_ten <= 2_020
    assert 480 <= last_five <= 510
    assert limiter.bound(1.0) == 210.0  # 10 at once (smoothing) + 200/s


def test_a_refused_take_says_how_long_to_wait_and_that_wait_is_enough() -> None:
    limiter = ReserveLimiter(10, 10, 0)
    assert limiter.try_take(0.0) == 0.0
    wait = limiter.try_take(0.0)
    assert wait > 0
    assert limiter.try_take(wait) == 0.0


def test_retry_after_blocks_then_resumes_at_the_sustained_rate() -> None:
    limiter = ReserveLimiter(10, 20, 5)
    limiter.block_until(3.0)
    assert limiter.try_take(1.0) == 2.0
    assert limiter.try_take(3.0) > 0  # the reserve was emptied: no burst right after a 429
    assert limiter.try_take(3.1) == 0.0


def test_busiest_window_counts_both_ends_of_a_window() -> None:
    assert busiest_window([1.7, 0.0, 0.5, 1.0, 1.6], 1.0) == 3
    assert busiest_window([], 1.0) == 0
