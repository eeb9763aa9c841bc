"""Kafka headers of the retry-tier and dead-letter records (design.md section 2).

Building and parsing them is pure; the timestamps are passed in. Header values never carry a
secret: they are built only from the record's coordinates, the endpoint's status and code, and
a detail string that the caller made from the event or the response, never from the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from forwarder.core.records import Origin, RecordLike

PREFIX = "forwarder."
REASON = "forwarder.error.reason"
STATUS = "forwarder.error.status"
CODE = "forwarder.error.code"
DETAIL = "forwarder.error.detail"
ORIGINAL_TOPIC = "forwarder.original.topic"
ORIGINAL_PARTITION = "forwarder.original.partition"
ORIGINAL_OFFSET = "forwarder.original.offset"
ORIGINAL_TIMESTAMP = "forwarder.original.timestamp"
ATTEMPTS = "forwarder.attempts"
FAILED_AT = "forwarder.failed_at"
DESTINATION = "forwarder.destination"
NOT_BEFORE = "forwarder.not_before"
REPLAYED_FROM = "forwarder.replayed_from"
REPLAY_COUNT = "forwarder.replay_count"

MAX_DETAIL_BYTES = 1024

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an event is being dead-lettered."""

    reason: str
    detail: str = ""
    status: int | None = None
    code: int | None = None


def header_value(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def origin_of(record: RecordLike) -> Origin:
    """The first source of a record: its ``forwarder.original.*`` headers, else itself."""
    headers = record.headers
    if headers:
        topic = header_value(headers, ORIGINAL_TOPIC)
        partition = header_value(headers, ORIGINAL_PARTITION)
        offset = header_value(headers, ORIGINAL_OFFSET)
        if topic is not None and partition is not None and offset is not None:
            try:
                ts = header_value(headers, ORIGINAL_TIMESTAMP)
                return Origin(topic.decode(), int(partition), int(offset), int(ts) if ts else -1)
            except (UnicodeDecodeError, ValueError):
                pass  # a damaged header: the record itself is the best origin left
    return Origin(record.topic, record.partition, record.offset, record.timestamp)


def attempts_of(record: RecordLike) -> int:
    raw = header_value(record.headers, ATTEMPTS) if record.headers else None
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def _origin_headers(origin: Origin) -> Headers:
    return [
        (ORIGINAL_TOPIC, origin.topic.encode()),
        (ORIGINAL_PARTITION, str(origin.partition).encode()),
        (ORIGINAL_OFFSET, str(origin.offset).encode()),
        (ORIGINAL_TIMESTAMP, str(origin.timestamp_ms).encode()),
    ]


def truncate_detail(detail: str) -> bytes:
    data = detail.encode("utf-8", "replace")
    if len(data) <= MAX_DETAIL_BYTES:
        return data
    return data[: MAX_DETAIL_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."


def _carried(record: RecordLike) -> Headers:
    """The record's own headers that are not the forwarder's: kept as the producer set them."""
    return [(k, v) for k, v in (record.headers or ()) if not k.startswith(PREFIX)]


def dead_letter_headers(
    record: RecordLike, failure: Failure, *, attempts: int, destination: str | None, now: float
) -> Headers:
    headers = _carried(record)
    replays = header_value(record.headers, REPLAY_COUNT) if record.headers else None
    if replays is not None:
        headers.append((REPLAY_COUNT, replays))  # a replayed event that failed again says so
    headers.append((REASON, failure.reason.encode()))
    if failure.status is not None:
        headers.append((STATUS, str(failure.status).encode()))
    if failure.code is not None:
        headers.append((CODE, str(failure.code).encode()))
    if failure.detail:
        headers.append((DETAIL, truncate_detail(failure.detail)))
    headers.extend(_origin_headers(origin_of(record)))
    headers.append((ATTEMPTS, str(attempts).encode()))
    failed_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    headers.append((FAILED_AT, failed_at.replace("+00:00", "Z").encode()))
    if destination:
        headers.append((DESTINATION, destination.encode()))
    return headers


def retry_headers(record: RecordLike, *, attempts: int, not_before_ms: int) -> Headers:
    headers = _carried(record)
    headers.extend(_origin_headers(origin_of(record)))
    headers.append((ATTEMPTS, str(attempts).encode()))
    headers.append((NOT_BEFORE, str(not_before_ms).encode()))
    return headers
