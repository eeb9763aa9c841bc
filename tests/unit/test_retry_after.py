"""``Retry-After``: both forms parsed, and capped before it can hold the endpoint back."""

from __future__ import annotations

import email.utils
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder.core.backoff import parse_retry_after, read_retry_after
from tests.hunting import hostile_settings

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date past: go now
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Wed, 24 Jun 2026 10:00:00 GMT", 1_782_295_200 - NOW),  # RFC 9110's IMF-fixdate
        ("Wednesday, 24-Jun-26 10:00:00 GMT", 1_782_295_200 - NOW),  # obsolete RFC 850 form
    ],
)
def test_seconds_and_http_date_forms(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
def test_absent_or_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("value", ["²", "١٢", "𝟗", "½", "1_000", "+5", "0x10"])
def test_digits_are_ascii_digits_only(value: str) -> None:
    # "²".isdigit() is True and float("²") raises: the header is absent, not an exception.
    assert parse_retry_after(value, NOW) is None
    assert read_retry_after(value, NOW) == (None, True)


def test_absent_is_not_unreadable() -> None:
    assert read_retry_after(None, NOW) == (None, False)
    assert read_retry_after("", NOW) == (None, False)
    assert read_retry_after("12", NOW) == (12.0, False)


def test_a_huge_number_is_finite() -> None:
    seconds = parse_retry_after("9" * 400, NOW)
    assert seconds is not None and math.isfinite(seconds)


@hostile_settings(300)
@given(
    st.one_of(
        st.text(),
        st.from_regex(r"\s*[0-9²³¹٠-٩]{1,30}\s*", fullmatch=True),
        st.builds(
            "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
            st.sampled_from(["Mon", "Sun", "Xyz", ""]),
            st.integers(-5, 99),
            st.sampled_from(["Jan", "Nov", "Foo"]),
            st.integers(-1, 100_000),
            st.integers(-1, 99),
            st.integers(0, 99),
            st.integers(0, 99),
            st.sampled_from(["GMT", "+9999", "-2400", "+0100", "UT", "zz"]),
        ),
    ),
    st.floats(0, 4e9),
)
def test_never_raises_for_any_text(value: str, now: float) -> None:
    seconds, unreadable = read_retry_after(value, now)
    assert seconds is None or (seconds >= 0 and math.isfinite(seconds))
    assert not (unreadable and seconds is not None)
    assert parse_retry_after(value, now) == seconds
