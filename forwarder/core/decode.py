"""Decode, validate and transform one Kafka record into an event ready to send, or a failure.

Pure: the schema registry, the routes and the record come in; an ``Event`` (the encoded JSON
with ``uuid`` and ``time`` set, its destination) or a ``Failure`` (reason and detail for the
dead-letter headers) comes out. Never raises on bad input.

Transform rules (design.md section 1):

- ``uuid`` is the endpoint's deduplication key, so it must be the same for every delivery of
  one event: a UUIDv5 of ``event_id`` when the event has one, else a UUIDv5 of the event's
  first coordinates ``topic/partition/offset`` (kept in headers through retry tiers and
  replays). Any ``uuid`` the producer set is replaced: the forwarder owns that column.
- ``time`` (Unix seconds) is kept when present and an integer; otherwise derived from the
  RFC 3339 ``timestamp``, and failing that from the Kafka record timestamp. A ``timestamp``
  that parses but lies outside 1970-01-01T00:00:00Z .. 2100-01-01T00:00:00Z (exclusive), such
  as year 1 or year 9999, is as unusable as one that does not parse: the endpoint's ``time``
  partitions a table by hour and the schemas' ``time`` is never negative, so such an event gets
  the Kafka record time instead (its ``timestamp`` member is forwarded unchanged). A Kafka
  timestamp outside that range is not used either: then no ``time`` is added.

Hostile JSON is orjson's to refuse (``invalid_json`` with its message): a UTF-8 BOM, invalid
UTF-8, a lone surrogate escape, nesting deeper than 1024, a number beyond a double such as
``10**400``, ``NaN`` and ``Infinity``. An object that repeats a member name is ``invalid_json``
too (``member_names``): the forwarder sends the producer's bytes, and a receiver keeping the
first of the repeated values would store one that was never validated.

A value framed by a schema registry (``forwarder.core.framing``) is unwrapped: its JSON alone
is validated, by the validator ``WriterLookup`` gives for its schema id, and sent; the record
keeps the framed bytes, so a dead letter holds what the producer wrote.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson
import uuid_utils

from forwarder.core.framing import HEADER_BYTES, MAGIC, short_frame
from forwarder.core.headers import Failure, origin_of
from forwarder.core.member_names import repeated_member
from forwarder.core.records import Origin, RecordLike

_V = TypeVar("_V")
MAX_EVENT_BYTES = 1_000_000
# ``time`` values the endpoint is given: from the Unix epoch up to 2100-01-01T00:00:00Z.
MAX_TIME_S = 4_102_444_800
# Python type -> JSON type, for the detail of a non-object event.
_JSON_TYPES = {
    "list": "array",
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
    "dict": "object",
}
# A fixed namespace so every replica, version and replay derives the same uuid.
UUID_NAMESPACE = uuid.UUID("6f1c9a52-4d0e-5b8a-9f57-2a3c1e7d9b40")


class ValidationFailureLike(Protocol):
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...


class Validator(Protocol):
    def validate(self, event: dict[str, Any]) -> ValidationFailureLike | None: ...


class WriterLookup(Protocol):
    """The validator of a framed event by its schema id (``forwarder.core.writer_schemas``)."""

    @property
    def by_header(self) -> Mapping[bytes, Validator]:
        """The validators of the ids found so far, by the 5-byte header naming them (one
        dict, filled in place): a slice and a lookup per event, no parsing."""
        ...

    def resolve(self, schema_id: int) -> Validator | Failure: ...


class Event(NamedTuple):
    """A valid event: its encoded JSON (as sent) and where it goes.

    A named tuple rather than a dataclass: one is built per event, and this is the cheapest.
    """

    record: RecordLike
    destination: str
    body: bytes
    uuid: str


# uuid-utils (Rust) derives a UUIDv5 in about 3,900 instructions, hashlib's SHA-1 through
# OpenSSL 3 (a context allocated for every copy and digest) and the hex string in 10,600.
_UUID5 = uuid_utils.uuid5
_NAMESPACE = uuid_utils.UUID(str(UUID_NAMESPACE))
# Event(...) through tuple.__new__: NamedTuple's own __new__ is a Python function, a frame per
# event.
_new_tuple = tuple.__new__
# The decoder's two ``time`` caches (per second, per whole timestamp) are bounded by clearing.
_CACHE_MAX = 4096
_FRACTION_LENGTHS = frozenset((20, 24, 27))  # no fraction, milliseconds, microseconds
_MICROSECONDS = 27


def event_uuid(event: dict[str, Any], origin: Origin | RecordLike) -> str:
    """From ``event_id``, else from the first coordinates (a record's are read from its headers).

    ``str(uuid.uuid5(UUID_NAMESPACE, name))``, the same string (a unit test checks it).
    """
    event_id = event.get("event_id")
    if isinstance(event_id, str) and event_id:
        return str(_UUID5(_NAMESPACE, event_id))
    if not isinstance(origin, Origin):
        origin = origin_of(origin)
    return str(_UUID5(_NAMESPACE, f"{origin.topic}/{origin.partition}/{origin.offset}"))


def event_time(event: dict[str, Any], record: RecordLike) -> int | None:
    """From ``timestamp``, else from the first source's Kafka timestamp (read only then).

    The rule without caches; ``Decoder`` applies it through two (a unit test compares them).
    """
    stamp = event.get("timestamp")
    seconds = stamp_seconds(stamp) if isinstance(stamp, str) else None
    return seconds if seconds is not None else record_time(record)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def stamp_seconds(stamp: str) -> int | None:
    """Unix seconds of an ISO 8601 ``timestamp`` (UTC when it names no zone), or None when it
    does not parse or lies outside the ``time`` range."""
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Floor, not int(): 1969-12-31T23:59:59.5Z lies before the range, not at its start.
    seconds = math.floor(parsed.timestamp())
    return seconds if 0 <= seconds < MAX_TIME_S else None


def record_time(record: RecordLike) -> int | None:
    """The first source's Kafka timestamp in seconds, when within the ``time`` range."""
    timestamp_ms = origin_of(record).timestamp_ms
    if 0 <= timestamp_ms < MAX_TIME_S * 1000:
        return timestamp_ms // 1000
    return None


def _remember(cache: dict[str, _V], key: str, value: _V) -> _V:
    """``cache[key] = value``, the cache emptied first when it holds ``_CACHE_MAX`` entries."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type: ``null``, ``array``, ``number``..."""
    kind = type(value).__name__
    return _JSON_TYPES.get(kind, kind)


def _splice(value: bytes, event_id: str, stamp: int | None) -> bytes | None:
    """The original JSON with ``uuid`` (and ``time`` when given) inserted first, or None.

    ``value`` must hold a JSON object with at least one member (the caller decoded it), none
    of them ``uuid`` nor, when ``stamp`` is given, ``time``: then no member is duplicated.
    Re-encoding every event costs more than the rest of decoding together; inserting the
    members in front of the producer's own bytes gives the same object byte for byte.
    """
    stripped = value if value[:1] == b"{" else value.lstrip()
    if stripped[:1] != b"{":
        return None
    head = f'{{"uuid":"{event_id}",' if stamp is None else f'{{"uuid":"{event_id}","time":{stamp},'
    # The first "{" is the opening brace: replacing it copies the bytes once.
    return stripped.replace(b"{", head.encode(), 1)


class Decoder:
    """Turns records into ``Event`` or ``Failure``; one per pipeline, reused for every record."""

    def __init__(
        self,
        validator: Validator,
        destination_for: Callable[[str], str],
        writers: WriterLookup | None = None,
    ) -> None:
        """``writers`` validates framed events; without it the local ``validator`` does."""
        self._validator = validator
        self._writers = writers
        by_header: Mapping[bytes, Validator] = {} if writers is None else writers.by_header
        self._writer_of = by_header.get  # bound once: called for every framed event
        self._destination_for = destination_for
        self._destinations: dict[str, str] = {}
        self._seconds: dict[str, int | None] = {}
        self._stamps: dict[str, int] = {}

    def decode(self, record: RecordLike) -> Event | Failure:
        value = record.value
        if value is None:
            return Failure("invalid_json", "the record has no value (a tombstone)")
        if len(value) > MAX_EVENT_BYTES:
            return Failure(
                "too_large", f"the event is {len(value)} bytes; the endpoint takes at most 1000000"
            )
        validator = self._validator
        if value[:1] == MAGIC:  # one byte compared: bare JSON pays nothing more
            writer = self._writer_of(value[:HEADER_BYTES])
            if writer is None:
                found = self._writer(value)
                if isinstance(found, Failure):
                    return found
                writer = found
            validator = writer
            value = value[HEADER_BYTES:]
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Failure("invalid_json", f"not valid UTF-8 JSON: {exc}")
        if not isinstance(event, dict):
            return Failure(
                "not_an_object", f"the event is a JSON {json_type(event)}, not an object"
            )
        repeated = repeated_member(value, event)
        if repeated is not None:
            return Failure("invalid_json", repeated)
        failure = validator.validate(event)
        if failure is not None:
            return Failure(failure.reason, failure.detail)
        event_id = event_uuid(event, record)
        stamp = event.get("time")
        derived = None
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            timestamp = event.get("timestamp")
            derived = self._stamps.get(timestamp) if isinstance(timestamp, str) else None
            if derived is None:
                derived = self._time(timestamp, record)
        body = (
            _splice(value, event_id, derived)
            if event and "uuid" not in event and ("time" not in event or derived is None)
            else None
        )
        if body is None:
            event["uuid"] = event_id
            if derived is not None:
                event["time"] = derived
            body = orjson.dumps(event)
        if len(body) > MAX_EVENT_BYTES:
            return Failure("too_large", f"the event is {len(body)} bytes with uuid and time added")
        event_type: str = event["event_type"]
        destination = self._destinations.get(event_type)
        if destination is None:
            destination = self._destinations[event_type] = self._destination_for(event_type)
        return _new_tuple(Event, (record, destination, body, event_id))

    def _writer(self, value: bytes) -> Validator | Failure:
        """A framed value's validator when its header is not a cached one (the slow path)."""
        if len(value) < HEADER_BYTES:
            return short_frame(value)
        if self._writers is None:
            return self._validator
        return self._writers.resolve(int.from_bytes(value[1:HEADER_BYTES], "big"))

    def _time(self, stamp: object, record: RecordLike) -> int | None:
        """``event_time`` of an event whose ``timestamp`` member is ``stamp`` (None when absent).

        Two caches spare the parse. A parsed ``timestamp`` is remembered whole, since every
        event of one millisecond shares it (unless it has microseconds); ``decode`` looks there
        first. And for "YYYY-MM-DDTHH:MM:SS" + ("", ".fff" or ".ffffff") + "Z" the fraction
        cannot change the (non-negative) whole second, so the first 19 characters decide.
        """
        if not isinstance(stamp, str):
            return record_time(record)
        if (
            len(stamp) in _FRACTION_LENGTHS
            and stamp[-1] == "Z"
            and (len(stamp) == 20 or (stamp[19] == "." and _ascii_digits(stamp[20:-1])))
        ):
            second = stamp[:19]
            seconds = self._seconds.get(second, -1)
            if seconds == -1:
                seconds = _remember(self._seconds, second, stamp_seconds(second + "Z"))
            if len(stamp) == _MICROSECONDS and seconds is not None:
                return seconds  # rarely shared by two events: remembering it costs more
        else:
            seconds = stamp_seconds(stamp)
        if seconds is None:
            return record_time(record)
        return _remember(self._stamps, stamp, seconds)
