from dataclasses import dataclass, field

from forwarder.core import headers as h
from forwarder.core.headers import (
    Failure,
    attempts_of,
    dead_letter_headers,
    origin_of,
    retry_headers,
)


@dataclass
class Rec:
    topic: str = "clicks"
    partition: int = 2
    offset: int = 41
    timestamp: int = 1_700_000_000_000
    key: bytes | None = b"user-1"
    value: bytes | None = b"{}"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def test_dead_letter_headers_carry_reason_origin_and_time() -> None:
    rec = Rec(headers=[("trace", b"abc")])
    out = dict(
        dead_letter_headers(
            rec,
            Failure("rejected", "HTTP 400 code 3004", 400, 3004),
            attempts=2,
            destination="db.page_view",
            now=1_700_000_000.5,
        )
    )
    assert out[h.REASON] == b"rejected"
    assert out[h.STATUS] == b"400"
    assert out[h.CODE] == b"3004"
    assert out[h.ORIGINAL_TOPIC] == b"clicks"
    assert out[h.ORIGINAL_PARTITION] == b"2"
    assert out[h.ORIGINAL_OFFSET] == b"41"
    assert out[h.ORIGINAL_TIMESTAMP] == b"1700000000000"
    assert out[h.ATTEMPTS] == b"2"
    assert out[h.FAILED_AT] == b"2023-11-14T22:13:20.500Z"
    assert out[h.DESTINATION] == b"db.page_view"
    assert out["trace"] == b"abc"


def test_detail_is_capped_at_one_kilobyte() -> None:
    out = dict(
        dead_letter_headers(
            Rec(), Failure("schema_violation", "x" * 5000), attempts=0, destination=None, now=0
        )
    )
    assert len(out[h.DETAIL]) <= 1024
    assert h.STATUS not in out
    assert h.DESTINATION not in out


def test_origin_survives_a_retry_tier_hop() -> None:
    first = Rec()
    tier_record = Rec(
        topic="clicks.retry.1",
        partition=0,
        offset=7,
        headers=retry_headers(first, attempts=3, not_before_ms=5),
    )
    origin = origin_of(tier_record)
    assert (origin.topic, origin.partition, origin.offset) == ("clicks", 2, 41)
    assert attempts_of(tier_record) == 3
    again = dict(retry_headers(tier_record, attempts=5, not_before_ms=9))
    assert again[h.ORIGINAL_OFFSET] == b"41"
    assert again[h.NOT_BEFORE] == b"9"
    assert [k for k, _ in retry_headers(tier_record, attempts=5, not_before_ms=9)].count(
        h.ATTEMPTS
    ) == 1


def test_damaged_origin_headers_fall_back_to_the_record() -> None:
    rec = Rec(
        headers=[
            (h.ORIGINAL_TOPIC, b"x"),
            (h.ORIGINAL_PARTITION, b"nope"),
            (h.ORIGINAL_OFFSET, b"1"),
        ]
    )
    assert origin_of(rec).topic == "clicks"
