"""Framed events (the Confluent wire format) in the pure core: unwrapping, writer schemas,
references, the lookups' cache, and the file reader of ``forwarder validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.commands.traffic import TrafficGenerator
from forwarder.core.decode import Decoder, Event
from forwarder.core.framing import NOT_LOOKED_UP, frame, split_framed_lines
from forwarder.core.headers import Failure
from forwarder.core.schemas import SchemaRegistry, default_schema_dir, validate_values
from forwarder.core.writer_schemas import MISSING_TTL_S, FetchedSchema, WriterSchemas
from tests.fakes import FakeRecord

LOCAL = SchemaRegistry.from_dirs([default_schema_dir()])
DRAFT = "https://json-schema.org/draft/2020-12/schema"
PAGE_VIEW = {
    "event_id": "ev-1",
    "event_type": "page_view",
    "user_id": "u1",
    "timestamp": "2026-11-22T10:30:00Z",
    "page_url": "https://shop.example.com/",
}
# A writer schema as a producer registers it: not the forwarder's local one.
WRITER = {
    "$schema": DRAFT,
    "type": "object",
    "required": ["event_id", "event_type"],
    "properties": {
        "event_id": {"type": "string"},
        "event_type": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
    },
}


def _record(value: bytes | None) -> FakeRecord:
    return FakeRecord("clicks", 0, 5, 1_763_800_000_000, None, value)


def _json(document: object) -> str:
    return json.dumps(document)


def _writers(
    schemas: dict[int, Any] | None = None,
    *,
    local_schemas: bool = False,
    routes: tuple[str, ...] = (),
) -> WriterSchemas:
    writers = WriterSchemas(LOCAL, registry=True, local_schemas=local_schemas, routes=routes)
    for schema_id, fetched in (schemas or {}).items():
        if not isinstance(fetched, FetchedSchema):
            fetched = FetchedSchema("JSON", _json(fetched))
        writers.learn(schema_id, fetched, "", now=0.0)
    return writers


def _decode(writers: WriterSchemas, value: bytes) -> Event | Failure:
    decoder = Decoder(LOCAL, lambda t: f"clickstream.{t}", writers)
    return decoder.decode(_record(value))


def test_a_framed_event_is_forwarded_as_json_alone_with_uuid_and_time() -> None:
    event = _decode(_writers({7: WRITER}), frame(7, orjson.dumps(PAGE_VIEW)))
    assert isinstance(event, Event)
    assert event.body.startswith(b'{"uuid":')
    body = orjson.loads(event.body)
    assert body["time"] == 1_795_343_400  # 2026-11-22T10:30:00Z
    assert {k: v for k, v in body.items() if k not in ("uuid", "time")} == PAGE_VIEW
    assert event.destination == "clickstream.page_view"


def test_bare_json_still_works_beside_framed_events() -> None:
    event = _decode(_writers({7: WRITER}), orjson.dumps(PAGE_VIEW))
    assert isinstance(event, Event)
    assert event.destination == "clickstream.page_view"


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=10**6))
@settings(max_examples=50)
def test_framed_and_bare_copies_of_an_event_give_the_same_body(schema_id: int, seed: int) -> None:
    """Whatever the id's bytes (0x00, 0x0a, 0x7b '{'), the header is cut and only it."""
    raw = orjson.dumps(TrafficGenerator(seed=seed).valid(now=1_763_800_000.0))
    writers = WriterSchemas(LOCAL, registry=False)
    bare, framed = _decode(writers, raw), _decode(writers, frame(schema_id, raw))
    assert isinstance(bare, Event) and isinstance(framed, Event)
    assert framed.body == bare.body


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x00\x00\x07"])
def test_a_framed_value_too_short_for_its_header_is_invalid_json(value: bytes) -> None:
    outcome = _decode(_writers({7: WRITER}), value)
    assert isinstance(outcome, Failure)
    assert outcome.reason == "invalid_json"
    assert f"of {len(value)} bytes" in outcome.detail
    assert "5-byte header" in outcome.detail


def test_a_header_without_json_is_invalid_json() -> None:
    outcome = _decode(_writers({7: WRITER}), frame(7, b""))
    assert isinstance(outcome, Failure) and outcome.reason == "invalid_json"


def test_an_id_the_registry_does_not_know_is_unknown_schema_with_the_id() -> None:
    writers = _writers()
    writers.learn(404, None, "schema id 404 is not in the registry (404, error 40403)", now=0.0)
    outcome = _decode(writers, frame(404, orjson.dumps(PAGE_VIEW)))
    assert outcome == Failure(
        "unknown_schema", "schema id 404 is not in the registry (404, error 40403)"
    )


def test_an_id_never_looked_up_decodes_as_the_not_looked_up_marker() -> None:
    """The pipeline tells it by identity and waits; to anyone else an unknown_schema."""
    outcome = _decode(_writers(), frame(9, orjson.dumps(PAGE_VIEW)))
    assert outcome is NOT_LOOKED_UP
    assert outcome.reason == "unknown_schema"


def test_a_writer_schema_violation_names_the_json_path_and_the_id() -> None:
    outcome = _decode(_writers({7: WRITER}), frame(7, orjson.dumps({**PAGE_VIEW, "price": -1})))
    assert isinstance(outcome, Failure)
    assert outcome.reason == "schema_violation"
    assert outcome.detail.startswith("/price: ")
    assert outcome.detail.endswith("(writer schema id 7)")


def test_by_default_the_local_schema_does_not_apply_but_the_event_type_must_be_routed() -> None:
    # page_url is required by the local page_view schema, not by the writer's.
    event = _decode(_writers({7: WRITER}), frame(7, orjson.dumps({**PAGE_VIEW, "page_url": 5})))
    assert isinstance(event, Event)
    stranger = frame(7, orjson.dumps({**PAGE_VIEW, "event_type": "signup"}))
    outcome = _decode(_writers({7: WRITER}), stranger)
    assert isinstance(outcome, Failure) and outcome.reason == "unknown_event_type"
    assert outcome.detail.startswith("/event_type: 'signup'")
    routed = _decode(_writers({7: WRITER}, routes=("signup",)), stranger)
    assert isinstance(routed, Event) and routed.destination == "clickstream.signup"


def test_with_local_schemas_the_local_schema_of_the_event_type_applies_too() -> None:
    writers = _writers({7: WRITER}, local_schemas=True)
    outcome = _decode(writers, frame(7, orjson.dumps({**PAGE_VIEW, "page_url": 5})))
    assert isinstance(outcome, Failure)
    assert outcome.reason == "schema_violation" and outcome.detail.startswith("/page_url")
    assert isinstance(_decode(writers, frame(7, orjson.dumps(PAGE_VIEW))), Event)


def test_without_a_registry_framed_events_are_validated_by_the_local_schemas() -> None:
    writers = WriterSchemas(LOCAL, registry=False)
    outcome = _decode(writers, frame(123, orjson.dumps({**PAGE_VIEW, "page_url": 5})))
    assert isinstance(outcome, Failure) and outcome.detail.startswith("/page_url")
    assert writers.unresolved([_record(frame(123, b"{}"))], now=0.0) is None


COMMON = {
    "$schema": DRAFT,
    "$id": "https://acme.example/schemas/common.json",
    "$defs": {"id": {"type": "string", "minLength": 3}},
}


@pytest.mark.parametrize(
    ("root_id", "ref", "name"),
    [
        (None, "common.json#/$defs/id", "common.json"),  # relative, no $id: the registry base
        ("https://acme.example/schemas/order.json", "common.json#/$defs/id", "common.json"),
        (None, "https://acme.example/schemas/common.json#/$defs/id", COMMON["$id"]),
    ],
)
def test_references_are_resolved_by_their_name(root_id: str | None, ref: str, name: str) -> None:
    root: dict[str, Any] = {
        "$schema": DRAFT,
        "type": "object",
        "properties": {"event_type": {"type": "string"}, "event_id": {"$ref": ref}},
    }
    if root_id:
        root["$id"] = root_id
    writers = _writers({3: FetchedSchema("JSON", _json(root), ((name, _json(COMMON)),))})
    good = _decode(writers, frame(3, orjson.dumps(PAGE_VIEW)))
    assert isinstance(good, Event)
    bad = _decode(writers, frame(3, orjson.dumps({**PAGE_VIEW, "event_id": "x"})))
    assert isinstance(bad, Failure) and bad.detail.startswith("/event_id")


def test_nested_references_are_resolved() -> None:
    middle = {
        "$schema": DRAFT,
        "$id": "https://acme.example/m.json",
        "$ref": "common.json#/$defs/id",
    }
    root = {"$schema": DRAFT, "properties": {"event_id": {"$ref": "https://acme.example/m.json"}}}
    fetched = FetchedSchema(
        "JSON",
        _json(root),
        (("https://acme.example/m.json", _json(middle)), ("common.json", _json(COMMON))),
    )
    writers = _writers({4: fetched}, routes=())
    bad = _decode(writers, frame(4, orjson.dumps({**PAGE_VIEW, "event_id": "x"})))
    assert isinstance(bad, Failure) and bad.detail.startswith("/event_id")


@pytest.mark.parametrize(
    ("fetched", "says"),
    [
        (FetchedSchema("AVRO", '{"type": "record"}'), "an AVRO schema, not a JSON Schema"),
        (FetchedSchema("JSON", "{not json"), "is not JSON"),
        (
            FetchedSchema("JSON", _json({"$ref": "https://elsewhere.example/x.json"})),
            "does not compile",
        ),
        (FetchedSchema("JSON", _json({"type": "objekt"})), "does not compile"),
    ],
)
def test_a_schema_that_cannot_be_used_is_unknown_schema(fetched: FetchedSchema, says: str) -> None:
    """An external $ref is refused, never fetched: the core does no I/O."""
    outcome = _decode(_writers({5: fetched}), frame(5, orjson.dumps(PAGE_VIEW)))
    assert isinstance(outcome, Failure) and outcome.reason == "unknown_schema"
    assert says in outcome.detail and "schema id 5" in outcome.detail


def test_unresolved_finds_the_first_unknown_id_and_every_unknown_id_after_it() -> None:
    writers = _writers({1: WRITER})
    records = [
        _record(orjson.dumps(PAGE_VIEW)),
        _record(frame(1, b"{}")),
        _record(b"\x00\x00"),  # too short: decoded as invalid_json, never looked up
        _record(frame(8, b"{}")),
        _record(frame(1, b"{}")),
        _record(frame(9, b"{}")),
        _record(None),
    ]
    assert writers.unresolved(records, now=0.0) == (3, {8, 9})
    assert writers.unresolved(records[:3], now=0.0) is None


def test_a_not_found_answer_is_believed_for_a_while_then_asked_again() -> None:
    writers = _writers()
    writers.learn(8, None, "schema id 8 is not in the registry", now=100.0)
    records = [_record(frame(8, b"{}"))]
    assert writers.unresolved(records, now=100.0 + MISSING_TTL_S - 1) is None
    assert writers.known(8, now=100.0)
    assert _decode(writers, frame(8, b"{}")) != NOT_LOOKED_UP
    writers.expire(now=100.0 + MISSING_TTL_S)
    assert _decode(writers, frame(8, b"{}")) is NOT_LOOKED_UP
    assert writers.unresolved(records, now=100.0 + MISSING_TTL_S) == (0, {8})
    writers.learn(8, FetchedSchema("JSON", _json(WRITER)), "", now=200.0)
    assert writers.unresolved(records, now=10_000.0) is None


def test_file_lines_split_with_framed_headers_taken_whole() -> None:
    id_with_a_newline = 10  # its last header byte is 0x0a
    data = (
        orjson.dumps(PAGE_VIEW)
        + b"\n\n"
        + frame(id_with_a_newline, orjson.dumps(PAGE_VIEW))
        + b"\r\n"
        + frame(7, b'{"a": 1}')
    )
    lines = list(split_framed_lines(data))
    assert [number for number, _ in lines] == [1, 3, 5]
    assert lines[1][1] == frame(id_with_a_newline, orjson.dumps(PAGE_VIEW))
    assert lines[2][1] == frame(7, b'{"a": 1}')


def test_validate_values_reports_framed_failures_like_the_forwarder() -> None:
    writers = _writers({7: WRITER})
    writers.learn(404, None, "schema id 404 is not in the registry", now=0.0)
    values = [
        (1, frame(7, orjson.dumps(PAGE_VIEW))),
        (2, frame(7, orjson.dumps({**PAGE_VIEW, "price": -3}))),
        (3, frame(404, orjson.dumps(PAGE_VIEW))),
        (4, b"\x00\x01"),
        (5, orjson.dumps(PAGE_VIEW)),
    ]
    failures = list(validate_values(values, LOCAL, writers))
    assert [(f.line, f.reason, f.path) for f in failures] == [
        (2, "schema_violation", "/price"),
        (3, "unknown_schema", ""),
        (4, "invalid_json", ""),
    ]


def test_the_bundled_schemas_work_as_writer_schemas_with_common_as_a_reference() -> None:
    """What ``forwarder traffic --registry`` registers: each event type's schema, referencing
    common.json by the relative name its $ref uses."""
    directory = default_schema_dir()
    common = (directory / "common.json").read_text()
    page_view = (directory / "page_view.json").read_text()
    writers = _writers({2: FetchedSchema("JSON", page_view, (("common.json", common),))})
    assert isinstance(_decode(writers, frame(2, orjson.dumps(PAGE_VIEW))), Event)
    late = {**PAGE_VIEW, "timestamp": "yesterday"}  # a rule of common.json
    outcome = _decode(writers, frame(2, orjson.dumps(late)))
    assert isinstance(outcome, Failure) and outcome.detail.startswith("/timestamp")
    assert Path(directory / "common.json").is_file()


def test_the_decoder_finds_schemas_learned_after_it_was_made_by_their_header() -> None:
    """The hot path: a slice and a dict lookup, not ``resolve`` (parsing the id, a call)."""

    class Counting(WriterSchemas):
        resolved = 0

        def resolve(self, schema_id: int) -> Any:
            Counting.resolved += 1
            return super().resolve(schema_id)

    writers = Counting(LOCAL, registry=True)
    decoder = Decoder(LOCAL, lambda t: f"clickstream.{t}", writers)  # before any schema
    writers.learn(7, FetchedSchema("JSON", _json(WRITER)), "", now=0.0)
    for _ in range(3):
        assert isinstance(decoder.decode(_record(frame(7, orjson.dumps(PAGE_VIEW)))), Event)
    assert Counting.resolved == 0
