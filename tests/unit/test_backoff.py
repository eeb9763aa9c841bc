from forwarder.core.backoff import backoff_s, retry_delay_s


def _top(lo: float, hi: float) -> float:
    return hi


def test_full_jitter_window_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 0.1, 1.0, _top) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff_s(3, 0.1, 1.0, lambda lo, hi: lo) == 0.0


def test_retry_after_is_a_floor() -> None:
    assert retry_delay_s(1, 0.1, 1.0, _top, 5.0) == 5.0
    assert retry_delay_s(1, 0.1, 1.0, _top, None) == 0.1


def test_the_window_stays_capped_after_thousands_of_attempts() -> None:
    # A retry or dead-letter topic can fail for hours; 2 ** 1100 overflows a float.
    assert backoff_s(5_000, 0.1, 5.0, _top) == 5.0
