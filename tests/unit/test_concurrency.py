"""The AIMD controller of adaptive concurrency, pure: time passed in."""

from __future__ import annotations

from forwarder.core.concurrency import Concurrency, ConcurrencySettings

RTT = 0.05


def busy_window(c: Concurrency, now: float, rtt: float = RTT, in_use: bool = True) -> float:
    """One window of requests answered in ``rtt`` each, the limit reached if ``in_use``."""
    c.sent(c.limit if in_use else c.limit - 1)
    for _ in range(3):
        now += rtt / 2
        c.answered(rtt, now)
    return now


def test_the_limit_grows_by_one_per_window_while_in_use_and_the_rtt_stays() -> None:
    c = Concurrency(ConcurrencySettings(maximum=64), now=0.0)
    now = 0.0
    limits = []
    for _ in range(10):
        now = busy_window(c, now)
        limits.append(c.limit)
    assert limits == list(range(2, 12))


def test_an_unused_limit_does_not_grow() -> None:
    c = Concurrency(ConcurrencySettings(initial=4), now=0.0)
    now = 0.0
    for _ in range(10):
        now = busy_window(c, now, in_use=False)
    assert c.limit == 4


def test_the_limit_stops_at_its_maximum() -> None:
    c = Concurrency(ConcurrencySettings(maximum=5), now=0.0)
    now = 0.0
    for _ in range(20):
        now = busy_window(c, now)
    assert c.limit == 5


def test_back_pressure_decreases_at_once_and_once_per_overload() -> None:
    c = Concurrency(ConcurrencySettings(initial=40), now=0.0)
    now = busy_window(c, 0.0, in_use=False)  # a mean RTT to size the windows
    assert c.limit == 40
    sent = now
    now += 0.001
    c.back_pressure(sent, now)
    assert c.limit == 36  # 40 * 0.9, at once
    for _ in range(5):  # the rest of the burst: requests sent before the decrease
        c.back_pressure(sent, now + 0.001)
    assert c.limit == 36
    c.back_pressure(now + 0.002, now + 0.003)  # sent after it: the overload goes on
    assert c.limit == 32  # floor(36 * 0.9)
    assert c.ceiling == 36


def test_a_small_limit_still_decreases_by_one_and_never_below_one() -> None:
    c = Concurrency(ConcurrencySettings(initial=3), now=0.0)
    now = 0.0
    seen = []
    for _ in range(4):
        now += 1.0
        c.back_pressure(now, now)
        seen.append(c.limit)
    assert seen == [2, 1, 1, 1]


def test_a_refused_limit_is_tried_again_only_after_clean_windows_ever_more_rarely() -> None:
    settings = ConcurrencySettings(initial=6, probe_windows=4, probe_windows_max=8)
    c = Concurrency(settings, now=0.0)
    now = busy_window(c, 0.0)
    assert c.limit == 7
    c.back_pressure(now, now)  # the capacity is 6
    assert (c.limit, c.ceiling) == (6, 7)
    limits = []
    for _ in range(4):
        now = busy_window(c, now)
        limits.append(c.limit)
    assert limits == [6, 6, 6, 7]  # a probe after 4 clean windows
    c.back_pressure(now, now)  # refused again: the next probe waits twice as long
    limits = []
    for _ in range(8):
        now = busy_window(c, now)
        limits.append(c.limit)
    assert limits == [6] * 7 + [7]
    now = busy_window(c, now)  # the probe is clean: the capacity grew, climb on
    assert (c.limit, c.ceiling) == (8, None)
    now = busy_window(c, now)
    assert c.limit == 9


def test_an_rtt_well_above_its_mean_decreases_and_a_steady_one_does_not() -> None:
    c = Concurrency(ConcurrencySettings(initial=20, maximum=20), now=0.0)
    now = 0.0
    for _ in range(10):  # steady, in use, at the maximum: nothing changes
        now = busy_window(c, now)
    assert c.limit == 20
    assert c.rtt_mean is not None and abs(c.rtt_mean - RTT) < 1e-9
    now = busy_window(c, now, rtt=RTT * 1.4)  # a rise below min_rise: no overload
    assert c.limit == 20
    now += RTT * 3  # one slow window (one answer, longer than the window) may be a stall
    c.answered(RTT * 3, now)
    assert c.limit == 20
    now += RTT * 3  # two in a row: queueing
    c.answered(RTT * 3, now)
    assert c.limit == 18
    assert c.decreases == {"back_pressure": 0, "rtt": 1}


def test_a_rising_rtt_stops_the_growth() -> None:
    c = Concurrency(ConcurrencySettings(initial=10), now=0.0)
    now = busy_window(c, 0.0)
    assert c.limit == 11
    now = busy_window(c, now, rtt=RTT * 1.35)  # above mean + spread, below the decrease
    assert c.limit == 11


def test_windows_last_one_mean_rtt() -> None:
    c = Concurrency(ConcurrencySettings(initial=1), now=0.0)
    c.sent(1)
    c.answered(0.5, 0.5)  # the first sample closes the first (shortest) window
    assert c.limit == 2
    c.sent(2)
    c.answered(0.5, 0.7)  # within the 0.5 s window: no change yet
    assert c.limit == 2
    c.answered(0.5, 1.0)
    assert c.limit == 3
    assert c.changes == 2


def test_a_slow_rtt_decreases_but_keeps_the_ceiling_a_refusal_taught() -> None:
    c = Concurrency(ConcurrencySettings(initial=4, probe_windows=4), now=0.0)
    now = busy_window(c, 0.0)
    c.back_pressure(now, now)  # 5 refused
    assert (c.limit, c.ceiling) == (4, 5)
    for _ in range(2):  # two slow windows: queueing (or a stall)
        now += RTT * 3
        c.answered(RTT * 3, now)
    assert (c.limit, c.ceiling) == (3, 5)
    limits = []
    for _ in range(7):
        now = busy_window(c, now)
        limits.append(c.limit)
    # Back to one below the refused limit, 4 clean windows there, one probe (clean: the
    # capacity grew, the climb goes on).
    assert limits == [3, 4, 4, 4, 4, 5, 6]
