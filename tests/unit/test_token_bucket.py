import pytest

from forwarder.core.token_bucket import TokenBucket


def test_burst_then_steady_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.try_take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(0.0) == pytest.approx(0.1)
    assert bucket.try_take(0.1) == 0.0


def test_block_until_holds_everyone_then_resumes_without_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    bucket.block_until(2.0)
    assert bucket.try_take(1.0) == pytest.approx(1.0)
    assert bucket.try_take(2.0) == pytest.approx(0.1)
    assert bucket.try_take(2.1) == 0.0


def test_zero_rate_is_unlimited_but_still_honours_blocks() -> None:
    bucket = TokenBucket(rate=0, burst=1)
    assert all(bucket.try_take(0.0) == 0.0 for _ in range(1000))
    bucket.block_until(5.0)
    assert bucket.try_take(4.0) == pytest.approx(1.0)
