"""Dead letters and tier records made to fit a topic's limit (forwarder.core.fitting)."""

from __future__ import annotations

import gzip
import hashlib
import os

from hypothesis import given
from hypothesis import strategies as st

from forwarder.core import fitting as f
from forwarder.core.headers import header_value
from tests.hunting import hostile_settings

OWN = [("forwarder.error.reason", b"too_large"), ("forwarder.original.offset", b"7")]


def test_a_record_that_fits_is_untouched() -> None:
    fitted = f.fit(1000, b"k", b"v", [("h", b"x"), *OWN])
    assert fitted == f.Fitted(b"k", b"v", [("h", b"x"), *OWN], f.WHOLE)


def test_a_compressible_value_is_compressed_whole() -> None:
    value = b'{"note": "' + b"x" * 50_000 + b'"}'
    fitted = f.fit(10_000, b"k", value, list(OWN))
    assert fitted is not None and fitted.how == f.COMPRESSED and fitted.size <= 10_000
    assert gzip.decompress(fitted.value or b"") == value
    assert header_value(fitted.headers, f.VALUE_ENCODING) == b"gzip"
    assert header_value(fitted.headers, f.VALUE_TRUNCATED) is None


def test_an_incompressible_value_is_cut_and_says_so() -> None:
    value = os.urandom(50_000)
    fitted = f.fit(10_000, b"k", value, [("h", b"x"), *OWN])
    assert fitted is not None and fitted.how == f.TRUNCATED
    assert fitted.size == 10_000, "as much of the value as fits"
    assert value.startswith(fitted.value or b"")
    assert header_value(fitted.headers, f.VALUE_TRUNCATED) == b"true"
    assert header_value(fitted.headers, f.VALUE_ORIGINAL_BYTES) == b"50000"
    assert (
        header_value(fitted.headers, f.VALUE_SHA256) == hashlib.sha256(value).hexdigest().encode()
    )
    assert header_value(fitted.headers, "h") == b"x"


def test_a_tier_record_keeps_its_value_or_does_not_fit() -> None:
    value = os.urandom(5_000)
    big_header = [("trace", b"t" * 20_000), *OWN]
    fitted = f.fit(10_000, b"k", value, big_header, dead_letter=False)
    assert fitted is not None and fitted.how == f.TRIMMED and fitted.value == value
    assert header_value(fitted.headers, "trace") is None
    assert header_value(fitted.headers, f.HEADERS_DROPPED) == b"1"
    assert f.fit(4_000, b"k", value, list(OWN), dead_letter=False) is None


def test_a_refusal_the_topic_config_does_not_explain_halves_the_limit() -> None:
    assert f.limit_after_refusal(1_048_588, 2_000_000) == 1_048_588
    assert f.limit_after_refusal(8_388_608, 1_000_000) == 500_000
    assert f.limit_after_refusal(8_388_608, 5_000) == f.MIN_LIMIT_BYTES


@hostile_settings(200)
@given(
    limit=st.integers(0, 40_000),
    key=st.one_of(st.none(), st.binary(max_size=30_000)),
    value=st.one_of(
        st.none(), st.binary(max_size=60_000), st.integers(0, 60_000).map(b"a".__mul__)
    ),
    carried=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=9_000)), max_size=4),
    dead_letter=st.booleans(),
)
def test_whatever_is_returned_fits_and_keeps_the_forwarders_headers(
    limit: int,
    key: bytes | None,
    value: bytes | None,
    carried: list[tuple[str, bytes]],
    dead_letter: bool,
) -> None:
    headers = [(name, data) for name, data in carried if not name.startswith("forwarder.")]
    headers += OWN
    fitted = f.fit(limit, key, value, headers, dead_letter=dead_letter)
    if fitted is None:  # only when not even the forwarder's own headers fit (and the marks)
        original = value or b""
        marks = [
            (f.VALUE_TRUNCATED, b"true"),
            (f.VALUE_ORIGINAL_BYTES, str(len(original)).encode()),
            (f.VALUE_SHA256, hashlib.sha256(original).hexdigest().encode()),
        ]
        least = (None if value is None else b"", [*OWN, *marks]) if dead_letter else (value, OWN)
        # Cutting a key costs a header (forwarder.key.truncated): a few bytes of slack.
        assert f.record_size(None, *least) + len(f.KEY_TRUNCATED) + 8 > limit
        return
    assert fitted.size <= limit
    assert [h for h in fitted.headers if h in OWN] == OWN
    if fitted.how == f.WHOLE:
        assert (fitted.key, fitted.value) == (key, value)
    elif fitted.how == f.COMPRESSED:
        assert gzip.decompress(fitted.value or b"") == value
    elif fitted.how == f.TRIMMED:
        assert fitted.value == value and not dead_letter
    else:
        assert (value or b"").startswith(fitted.value or b"")
        digest = hashlib.sha256(value or b"").hexdigest().encode()
        assert header_value(fitted.headers, f.VALUE_SHA256) == digest
