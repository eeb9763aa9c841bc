import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from forwarder.core import headers as h
from forwarder.core.decode import Decoder, Event, event_time, event_uuid
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


def _nest(levels: int) -> object:
    inner: object = {"leaf": 1}
    for _ in range(levels):
        inner = {"d": inner}
    return inner


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


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "2100-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ],
)
def test_a_schema_valid_timestamp_out_of_range_gets_the_kafka_time(stamp: str) -> None:
    # Year 1 would give a negative time and year 9999 one in 253402300799: neither is a time
    # the endpoint can partition by, so the record's Kafka timestamp is used, as for a
    # timestamp that does not parse; the event's own timestamp is forwarded unchanged.
    event = _decode({**VALID, "timestamp": stamp}, timestamp=1_763_800_000_123)
    assert isinstance(event, Event)
    body = orjson.loads(event.body)
    assert body["time"] == 1_763_800_000
    assert body["timestamp"] == stamp


def test_the_last_moments_in_range_are_kept() -> None:
    for stamp, seconds in (("1970-01-01T00:00:00Z", 0), ("2099-12-31T23:59:59Z", 4_102_444_799)):
        event = _decode({**VALID, "timestamp": stamp})
        assert isinstance(event, Event)
        assert orjson.loads(event.body)["time"] == seconds


def test_a_kafka_timestamp_out_of_range_adds_no_time() -> None:
    decoder = Decoder(_AcceptAll(), lambda t: f"db.{t}")
    event = decoder.decode(Rec(b'{"event_type":"x"}', timestamp=253_402_300_799_000))  # type: ignore[arg-type]
    assert isinstance(event, Event)
    assert "time" not in orjson.loads(event.body)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"null", "null"),
        (b"[1]", "array"),
        (b'"text"', "string"),
        (b"12", "number"),
        (b"1.5", "number"),
        (b"true", "boolean"),
    ],
)
def test_a_non_object_is_named_by_its_json_type(value: bytes, shown: str) -> None:
    outcome = DECODER.decode(Rec(value))  # type: ignore[arg-type]
    assert outcome == Failure("not_an_object", f"the event is a JSON {shown}, not an object")


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"\xef\xbb\xbf" + orjson.dumps(VALID), "byte order mark"),
        (b"[" * 10_000 + b"]" * 10_000, "depth limit"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "depth limit"),
        (b'{"n":' + str(10**400).encode() + b"}", "infinity"),
        (b'{"n":NaN}', "unexpected character"),
        (b'{"n":Infinity}', "unexpected character"),
        (b'{"s":"\\ud800"}', "surrogate"),
        (b'{"s":"\xc3\x28"}', "UTF-8"),
        (b"", "empty"),
        (b" \n\t ", "empty"),
    ],
)
def test_hostile_json_is_invalid_json_with_the_parsers_reason(value: bytes, detail: str) -> None:
    outcome = DECODER.decode(Rec(value))  # type: ignore[arg-type]
    assert isinstance(outcome, Failure)
    assert outcome.reason == "invalid_json"
    assert detail in outcome.detail


@pytest.mark.parametrize(
    ("layout", "raw"),
    [
        ("compact", orjson.dumps(VALID)[:-1] + b',"device_type":"desktop","device_type":"mobile"}'),
        (
            "json.dumps",
            json.dumps(VALID)[:-1].encode()
            + b', "device_type": "desktop", "device_type": "mobile"}',
        ),
        (
            "nested",
            orjson.dumps({**VALID, "extra": {"a": [{"b": 1}]}})[:-4] + b',"b":2}]}}',
        ),
        (
            "210 levels deep, past jiter's limit",
            orjson.dumps(VALID)[:-1]
            + b',"deep":'
            + b'{"d":' * 210
            + b'{"x":1,"x":2}'
            + b"}" * 210
            + b"}",
        ),
    ],
)
def test_an_object_repeating_a_member_name_is_invalid_json(layout: str, raw: bytes) -> None:
    # Even when every value is valid: the body sent is the producer's bytes, and a receiver
    # keeping the first of the repeated values would store one that was never validated.
    outcome = DECODER.decode(Rec(raw))  # type: ignore[arg-type]
    assert isinstance(outcome, Failure), layout
    assert outcome.reason == "invalid_json"
    assert "repeat" in outcome.detail, outcome.detail
    if "deep" not in layout:
        assert '"device_type"' in outcome.detail or '"b"' in outcome.detail, outcome.detail


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(VALID),
        json.dumps(VALID).encode(),
        json.dumps(VALID, indent=2, ensure_ascii=True).encode(),
        json.dumps({**VALID, "query": 'a "quoted": name', "page_url": 'x":1'}).encode(),
        json.dumps({**VALID, "q": 'say "x": y', "deep": [{"d": [1]}] * 3 + [_nest(210)]}).encode(),
    ],
    ids=["compact", "json.dumps", "indented", "quotes-and-colons-in-strings", "deep-counted"],
)
def test_an_object_with_distinct_member_names_is_not_refused(raw: bytes) -> None:
    outcome = DECODER.decode(Rec(raw))  # type: ignore[arg-type]
    assert isinstance(outcome, Event), outcome


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
def test_event_uuid_matches_the_standard_library_uuid5_for_any_event_id(name: str) -> None:
    import uuid

    from forwarder.core.decode import UUID_NAMESPACE

    expected = uuid.uuid5(UUID_NAMESPACE, name or "t/1/2")
    assert event_uuid({"event_id": name}, Origin("t", 1, 2, 0)) == str(expected)


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.sampled_from(["", ".%f", ".123", ".1", ".1234567", ".１２３", ".12a"]),
    st.sampled_from(["Z", "+00:00", "+05:30", "", "z"]),
)
@example(datetime(1969, 12, 31, 23, 59, 59), ".500", "Z")
@example(datetime(2099, 12, 31, 23, 59, 59), ".999999", "Z")
def test_the_time_caches_agree_with_parsing_every_timestamp(
    when: datetime, fraction: str, zone: str
) -> None:
    stamp = (
        when.strftime("%Y-%m-%dT%H:%M:%S")
        + (when.strftime(fraction) if fraction == ".%f" else fraction)
        + zone
    )
    decoder = Decoder(_AcceptAll(), str)
    record = Rec(orjson.dumps({"event_type": "x", "timestamp": stamp}))
    expected = event_time({"timestamp": stamp}, record)  # type: ignore[arg-type]
    for attempt in ("a first parse", "a cache hit"):
        event = decoder.decode(record)  # type: ignore[arg-type]
        assert isinstance(event, Event)
        assert orjson.loads(event.body)["time"] == expected, attempt
