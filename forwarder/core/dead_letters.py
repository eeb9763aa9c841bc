"""Dead-letter records as data: parse their headers, select them, group them, re-head them.

Pure: the ``forwarder dlq`` commands read and write Kafka; what a dead letter says, whether a
filter selects it, how the stats group it and which headers a replayed record carries are
decided here.
"""

from __future__ import annotations

import contextlib
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forwarder.core import fitting
from forwarder.core import headers as h
from forwarder.core.records import RecordLike

SAMPLE_CHARS = 160


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    status: int | None
    code: int | None
    destination: str
    detail: str
    failed_at: datetime | None
    original_topic: str
    replay_count: int
    # How the record was made to fit its topic (forwarder.core.fitting): "" when written whole.
    fitted: str = ""
    original_bytes: int | None = None
    original_sha256: str = ""

    @property
    def truncated(self) -> bool:
        """The value was cut (or the producer's headers or key dropped): only the original,
        read again from its source coordinates, may be replayed."""
        return self.fitted == fitting.TRUNCATED


def _text(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    raw = h.header_value(headers, name)
    return raw.decode("utf-8", "replace") if raw is not None else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse(record: RecordLike) -> DeadLetter | None:
    """The dead letter a record describes, or None when it lacks the forwarder's headers."""
    headers = record.headers or ()
    reason = _text(headers, h.REASON)
    original = _text(headers, h.ORIGINAL_TOPIC)
    if reason is None or original is None:
        return None
    failed = _text(headers, h.FAILED_AT)
    try:
        failed_at = parse_time(failed) if failed else None
    except ValueError:
        failed_at = None
    return DeadLetter(
        reason=reason,
        status=_int(_text(headers, h.STATUS)),
        code=_int(_text(headers, h.CODE)),
        destination=_text(headers, h.DESTINATION) or "",
        detail=_text(headers, h.DETAIL) or "",
        failed_at=failed_at,
        original_topic=original,
        replay_count=_int(_text(headers, h.REPLAY_COUNT)) or 0,
        fitted=_fitted(headers),
        original_bytes=_int(_text(headers, fitting.VALUE_ORIGINAL_BYTES)),
        original_sha256=_text(headers, fitting.VALUE_SHA256) or "",
    )


def _fitted(headers: Sequence[tuple[str, bytes]]) -> str:
    if h.header_value(headers, fitting.VALUE_TRUNCATED) is not None:
        return fitting.TRUNCATED
    if (
        h.header_value(headers, fitting.HEADERS_DROPPED) is not None
        or h.header_value(headers, fitting.KEY_TRUNCATED) is not None
    ):
        return fitting.TRUNCATED  # the value is whole, the producer's headers or key are not
    if h.header_value(headers, fitting.VALUE_ENCODING) is not None:
        return fitting.COMPRESSED
    return ""


def stored_value(record: RecordLike, letter: DeadLetter) -> bytes | None:
    """The original value a dead letter holds: its value, uncompressed if it was compressed to
    fit. None for a cut one, or one whose bytes do not match its SHA-256 (never replayed)."""
    if letter.truncated:
        return None
    if letter.fitted != fitting.COMPRESSED:
        return record.value
    try:
        value = zlib.decompressobj(wbits=31).decompress(record.value or b"")
    except zlib.error:
        return None
    return value if matches(value, letter) else None


def matches(value: bytes | None, letter: DeadLetter) -> bool:
    """Whether ``value`` is the original a fitted dead letter names (by size and SHA-256)."""
    data = value or b""
    return (letter.original_bytes in (None, len(data))) and (
        not letter.original_sha256 or hashlib.sha256(data).hexdigest() == letter.original_sha256
    )


@dataclass(frozen=True)
class Selection:
    """Filters of ``dlq replay``; every one given must match (empty: any)."""

    reasons: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    codes: tuple[int, ...] = ()
    destinations: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.statuses and letter.status not in self.statuses:
            return False
        if self.codes and letter.code not in self.codes:
            return False
        if self.destinations and letter.destination not in self.destinations:
            return False
        if self.since is not None and (letter.failed_at is None or letter.failed_at < self.since):
            return False
        return not (
            self.until is not None and (letter.failed_at is None or letter.failed_at > self.until)
        )


def progress_group(
    base: str, selection: Selection, *, to: str | None = None, revalidate: bool = False
) -> str:
    """The default progress group of ``dlq replay``: one per selection.

    Progress says which dead letters *this* selection has dealt with. Shared by every
    selection, a run with other filters would start past records it never looked at, and a
    record skipped by ``--revalidate`` would count as done for all. So the group is derived
    from everything that decides what a run replays where: the filters, ``--to`` and
    ``--revalidate`` (not ``--limit``: a limited run is resumed by the same command). The
    same command line always maps to the same group.
    """
    parts = [
        ("reason", sorted(selection.reasons)),
        ("status", sorted(str(v) for v in selection.statuses)),
        ("code", sorted(str(v) for v in selection.codes)),
        ("destination", sorted(selection.destinations)),
        ("since", [selection.since.isoformat()] if selection.since else []),
        ("until", [selection.until.isoformat()] if selection.until else []),
        ("to", [to] if to else []),
        ("revalidate", ["yes"] if revalidate else []),
    ]
    canonical = ";".join(f"{name}={','.join(values)}" for name, values in parts if values)
    if not canonical:
        return f"{base}.all"
    return f"{base}.{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def replay_headers(
    record: RecordLike,
    letter: DeadLetter,
    dlq_topic: str,
    original: RecordLike | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of a replayed record: the producer's own and the origin, no error headers.

    The ``forwarder.original.*`` headers stay, so the event keeps the ``uuid`` of its first
    delivery attempt even when it has no ``event_id``. ``original``: the source record read
    again for a cut dead letter, whose producer headers are taken instead (the dead letter
    may have lost them to fit).
    """
    keep = (h.ORIGINAL_TOPIC, h.ORIGINAL_PARTITION, h.ORIGINAL_OFFSET, h.ORIGINAL_TIMESTAMP)
    if original is not None:
        own = [(k, v) for k, v in (original.headers or ()) if not k.startswith(h.PREFIX)]
        out = own + [(k, v) for k, v in (record.headers or ()) if k in keep]
    else:
        out = [(k, v) for k, v in (record.headers or ()) if not k.startswith(h.PREFIX) or k in keep]
    out.append((h.REPLAYED_FROM, f"{dlq_topic}/{record.partition}/{record.offset}".encode()))
    out.append((h.REPLAY_COUNT, str(letter.replay_count + 1).encode()))
    return out


def sample(value: bytes | None, letter: DeadLetter | None = None) -> str:
    if letter is not None and letter.fitted == fitting.COMPRESSED:
        # The start of the original, not gzip's bytes; a damaged one is shown as stored.
        with contextlib.suppress(zlib.error):
            value = zlib.decompressobj(wbits=31).decompress(value or b"", SAMPLE_CHARS * 4)
    text = (value or b"").decode("utf-8", "replace")
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 3] + "..."


GroupKey = tuple[str, str, str, str]


@dataclass
class Group:
    count: int = 0
    truncated: int = 0  # cut to fit the topic: replayed from the source while it retains them
    oldest: datetime | None = None
    newest: datetime | None = None
    samples: list[str] = field(default_factory=list)


class Stats:
    """Counts by (reason, status, code, destination) with time range and a few samples."""

    def __init__(self, samples: int = 3) -> None:
        self.samples = samples
        self.groups: dict[GroupKey, Group] = {}
        self.total = 0
        self.foreign = 0  # records without the forwarder's headers
        self.truncated = 0  # cut to fit the dead-letter topic (forwarder.value.truncated)
        self.compressed = 0  # compressed whole to fit it (forwarder.value.encoding)

    def add(self, letter: DeadLetter | None, value: bytes | None) -> None:
        self.total += 1
        if letter is None:
            self.foreign += 1
            return
        key = (letter.reason, _label(letter.status), _label(letter.code), letter.destination)
        group = self.groups.setdefault(key, Group())
        group.count += 1
        if letter.truncated:
            group.truncated += 1
            self.truncated += 1
        elif letter.fitted == fitting.COMPRESSED:
            self.compressed += 1
        if letter.failed_at is not None:
            group.oldest = min(group.oldest or letter.failed_at, letter.failed_at)
            group.newest = max(group.newest or letter.failed_at, letter.failed_at)
        if len(group.samples) < self.samples:
            group.samples.append(sample(value, letter))

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "without_forwarder_headers": self.foreign,
            "truncated": self.truncated,
            "compressed": self.compressed,
            "groups": [
                {
                    "reason": k[0],
                    "status": _int(k[1]),
                    "code": _int(k[2]),
                    "destination": k[3] or None,
                    "count": g.count,
                    "truncated": g.truncated,
                    "oldest_failed_at": g.oldest.isoformat() if g.oldest else None,
                    "newest_failed_at": g.newest.isoformat() if g.newest else None,
                    "samples": g.samples,
                }
                for k, g in sorted(self.groups.items(), key=lambda item: -item[1].count)
            ],
        }


def _label(value: int | None) -> str:
    return "" if value is None else str(value)
