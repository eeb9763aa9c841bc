from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from forwarder.core import headers as h
from forwarder.core.decode import Decoder, Event, event_uuid
from forwarder.core.headers import Failure, retry_headers
from forwarder.core.records import Origin
from forwarder.core.schemas import SchemaRegistry, default_schema_dir

REGISTRY = SchemaRegistry.from_dirs([default_schema_dir()])
DECODER = Decoder(REGISTRY, lambda event_type: f"clickstream.{event_type}")
VALID = {
    "event_id": "ev-1",
    "event_type": "page_view",
    "user_id": "u1",
    "timestamp": "2026-11-22T10:30:00.500+01:00",
    "page_url": "https://shop.example.com/",
}


@dataclass
class Rec:
    value: bytes | None
    topic: str = "clicks"
    partition: int = 1
    offset: int = 10
    timestamp: int = 1_763_800_000_000
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _decode(value: object, **kw: object) -> Event | Failure:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return DECODER.decode(Rec(raw, **kw))  # type: ignore[arg-type]


def test_valid_event_gets_uuid_time_and_destination() -> None:
    event = _decode(VALID)
    assert isinstance(event, Event)
    body = orjson.loads(event.body)
    assert body["uuid"] == event.uuid == event_uuid(VALID, Origin("x", 0, 0, 0))
    assert body["time"] == int(datetime(2026, 11, 22, 9, 30, tzinfo=UTC).timestamp())
    assert event.destination == "clickstream.page_view"
    assert {k: v for k, v in body.items() if k not in ("uuid", "time")} == VALID


def test_uuid_is_the_same_on_every_delivery_and_differs_between_events() -> None:
    first = _decode(VALID, offset=1)
    again = _decode(VALID, offset=99, partition=3)
    other = _decode({**VALID, "event_id": "ev-2"})
    assert isinstance(first, Event) and isinstance(again, Event) and isinstance(other, Event)
    assert first.uuid == again.uuid != other.uuid


def test_uuid_without_event_id_comes_from_the_first_coordinates() -> None:
    decoder = Decoder(_AcceptAll(), lambda t: f"db.{t}")
    event = {"event_type": "page_view"}
    original = Rec(orjson.dumps(event), offset=5)
    tier = Rec(
        orjson.dumps(event),
        topic="clicks.retry.1",
        offset=0,
        headers=retry_headers(original, attempts=3, not_before_ms=0),
    )
    a, b = decoder.decode(original), decoder.decode(tier)  # type: ignore[arg-type]
    c = decoder.decode(Rec(orjson.dumps(event), offset=6))  # type: ignore[arg-type]
    assert isinstance(a, Event) and isinstance(b, Event) and isinstance(c, Event)
    assert a.uuid == b.uuid != c.uuid


def test_existing_integer_time_is_kept_and_kafka_time_is_the_last_resort() -> None:
    kept = _decode({**VALID, "time": 42})
    assert isinstance(kept, Event) and orjson.loads(kept.body)["time"] == 42
    decoder = Decoder(_AcceptAll(), lambda t: f"db.{t}")
    no_stamp = decoder.decode(Rec(b'{"event_type":"x"}'))  # type: ignore[arg-type]
    assert isinstance(no_stamp, Event) and orjson.loads(no_stamp.body)["time"] == 1_763_800_000


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (None, "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        ({**VALID, "event_type": "nope"}, "unknown_event_type"),
        ({**VALID, "timestamp": "yesterday"}, "schema_violation"),
        ({**VALID, "pad": "x" * 1_000_001}, "too_large"),
    ],
)
def test_bad_input_is_a_failure_never_an_exception(value: object, reason: str) -> None:
    outcome = DECODER.decode(Rec(value if isinstance(value, bytes | None) else orjson.dumps(value)))  # type: ignore[arg-type]
    assert isinstance(outcome, Failure)
    assert outcome.reason == reason
    assert outcome.detail


def test_schema_failure_detail_names_the_path() -> None:
    outcome = _decode({**VALID, "device_type": "fridge"})
    assert isinstance(outcome, Failure)
    assert outcome.detail.startswith("/device_type")


class _AcceptAll:
    def validate(self, event: dict[str, object]) -> None:
        return None


def test_headers_module_names_match_the_design() -> None:
    assert h.REASON == "forwarder.error.reason"
    assert h.NOT_BEFORE == "forwarder.not_before"


@pytest.mark.parametrize(
    ("raw", "inserted"),
    [
        (b'{"event_type":"x","a":[1, 2] }', '"uuid":"{u}","time":1763800000,'),
        (b' \n{ "event_type":"x","time":7}', '"uuid":"{u}",'),
    ],
)
def test_event_bytes_are_forwarded_unchanged_after_the_inserted_members(
    raw: bytes, inserted: str
) -> None:
    decoder = Decoder(_AcceptAll(), lambda t: f"db.{t}")
    event = decoder.decode(Rec(raw))  # type: ignore[arg-type]
    assert isinstance(event, Event)
    rest = raw.lstrip()[1:]
    assert event.body == b"{" + inserted.format(u=event.uuid).encode() + rest
    assert orjson.loads(event.body) == {**orjson.loads(raw), **orjson.loads(event.body)}


def test_a_time_that_is_not_an_integer_is_replaced_not_duplicated() -> None:
    decoder = Decoder(_AcceptAll(), lambda t: f"db.{t}")
    event = decoder.decode(Rec(b'{"event_type":"x","time":"soon"}'))  # type: ignore[arg-type]
    assert isinstance(event, Event)
    assert event.body.count(b'"time"') == 1
    assert orjson.loads(event.body)["time"] == 1_763_800_000


@given(st.text())
@example("ev-1")
@example("")
@example("ünïcode-名前")
@example("clicks/3/12345")
@example("x" * 300)
def test_fast_uuid5_matches_the_standard_library_for_any_name(name: str) -> None:
    import uuid

    from forwarder.core.decode import UUID_NAMESPACE, uuid5

    assert uuid5(name) == str(uuid.uuid5(UUID_NAMESPACE, name))
