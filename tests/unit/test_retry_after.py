"""``Retry-After``: both forms parsed, and capped before it can hold the endpoint back."""

from __future__ import annotations

import email.utils

import pytest

from forwarder.core.backoff import parse_retry_after

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
