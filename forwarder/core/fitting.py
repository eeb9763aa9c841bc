"""Records that fit: a dead letter or a retry-tier record the topic will take (pure).

A broker refuses a record batch over the topic's ``max.message.bytes`` and aiokafka one over
the producer's ``max_request_size``; both errors are final, so a record that does not fit must
be made to fit before it is written, or it would be retried for ever. Sizes here are aiokafka's
upper bound of a record alone in its batch (``DefaultRecordBatchBuilder.estimate_size_in_bytes``:
the 61-byte batch header, at most 21 bytes of record overhead, the key, the value and the
headers with their varint lengths); a record over 16 KB is always alone in its batch.

A dead letter that does not fit is written, in this order of preference:

1. whole;
2. with its value gzip-compressed, if that fits (``forwarder.value.encoding: gzip``): the
   original bytes come back with ``gunzip``, and ``dlq replay`` sends them;
3. cut: the producer's own headers dropped if they alone are in the way
   (``forwarder.headers.dropped``: how many), the key cut if even that is not enough
   (``forwarder.key.truncated``), then the value cut to what is left
   (``forwarder.value.truncated: true``).

Both 2 and 3 add ``forwarder.value.original_bytes`` and ``forwarder.value.sha256`` (hex, of the
original value). The ``forwarder.original.*`` headers are never dropped: they say where the
original can be read again while the source topic retains it, which ``dlq replay`` does for a
cut record (it never replays a cut value). A retry-tier record is never compressed nor cut (the
tier consumer sends its value to the endpoint); it may lose the producer's headers and its key
(the endpoint sees neither), and a tier record that still does not fit is dead-lettered.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from forwarder.core.headers import PREFIX

# aiokafka's DefaultRecordBatchBuilder.HEADER_STRUCT.size + MAX_RECORD_OVERHEAD.
BATCH_OVERHEAD_BYTES = 61 + 21

VALUE_ENCODING = "forwarder.value.encoding"
VALUE_TRUNCATED = "forwarder.value.truncated"
VALUE_ORIGINAL_BYTES = "forwarder.value.original_bytes"
VALUE_SHA256 = "forwarder.value.sha256"
HEADERS_DROPPED = "forwarder.headers.dropped"
KEY_TRUNCATED = "forwarder.key.truncated"

WHOLE = "whole"
COMPRESSED = "compressed"
TRUNCATED = "truncated"
TRIMMED = "trimmed"  # a tier record without the producer's headers or its key; value intact
# Below this, a topic's limit is not worth halving further: the forwarder's own headers of a
# dead letter take up to about 1.5 KB.
MIN_LIMIT_BYTES = 4096

Headers = list[tuple[str, bytes]]


def _varint_bytes(value: int) -> int:
    """The length of Kafka's zig-zag varint of ``value``."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _field_bytes(data: bytes | None) -> int:
    return 1 if data is None else _varint_bytes(len(data)) + len(data)


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """aiokafka's upper bound of the batch holding this record alone."""
    size = BATCH_OVERHEAD_BYTES + _field_bytes(key) + _field_bytes(value)
    size += _varint_bytes(len(headers))
    for name, data in headers:
        size += _field_bytes(name.encode()) + _field_bytes(data)
    return size


@dataclass(frozen=True, slots=True)
class Fitted:
    """A record as it will be written, and how it was made to fit (``WHOLE`` if untouched)."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    how: str

    @property
    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


def fit(
    limit: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    *,
    dead_letter: bool = True,
) -> Fitted | None:
    """The record made to fit ``limit`` bytes (see the module docstring), or None if it cannot:
    a tier record whose value and the forwarder's headers alone are too large, or a dead letter
    whose forwarder headers alone are."""
    if record_size(key, value, headers) <= limit:
        return Fitted(key, value, headers, WHOLE)
    original = value or b""
    marks: Headers = [
        (VALUE_ORIGINAL_BYTES, str(len(original)).encode()),
        (VALUE_SHA256, hashlib.sha256(original).hexdigest().encode()),
    ]
    if dead_letter and original:
        packed = gzip.compress(original, compresslevel=6, mtime=0)
        with_encoding = [*headers, (VALUE_ENCODING, b"gzip"), *marks]
        if record_size(key, packed, with_encoding) <= limit:
            return Fitted(key, packed, with_encoding, COMPRESSED)
    own = [(name, data) for name, data in headers if name.startswith(PREFIX)]
    # A dead letter's value is cut to whatever room is left once the headers and key fit; a
    # tier record's stays whole.
    kept = [*headers, (VALUE_TRUNCATED, b"true"), *marks] if dead_letter else headers
    body = (b"" if value is not None else None) if dead_letter else value
    if record_size(key, body, kept) > limit:  # the producer's headers are in the way
        dropped = len(headers) - len(own)
        kept = [*own, *kept[len(headers) :]]
        if dropped:
            kept.append((HEADERS_DROPPED, str(dropped).encode()))
    if record_size(key, body, kept) > limit and key:  # so is the key: keep what fits of it
        kept = [*kept, (KEY_TRUNCATED, str(len(key)).encode())]
        key = _cut_to(limit, key, lambda part: record_size(part, body, kept))
    if record_size(key, body, kept) > limit:
        return None
    if not dead_letter:
        return Fitted(key, value, kept, TRIMMED)
    if value is None:
        return Fitted(key, None, kept, TRUNCATED)  # a tombstone: only its headers were in the way
    cut = _cut_to(limit, original, lambda part: record_size(key, part, kept))
    return Fitted(key, cut, kept, TRUNCATED)


def _cut_to(limit: int, data: bytes, size_with: Callable[[bytes], int]) -> bytes:
    """The longest prefix of ``data`` for which ``size_with(prefix)`` is within ``limit``
    (``size_with(b"")`` is). A byte more costs one byte, plus up to 4 of varint: a few steps."""
    length = max(0, min(len(data), limit - size_with(b"")))
    while length > 0 and (over := size_with(data[:length]) - limit) > 0:
        length -= over
    return data[: max(0, length)]


def limit_after_refusal(known: int, refused_size: int) -> int:
    """The limit to assume for a topic that refused a record of ``refused_size`` bytes.

    The topic's ``max.message.bytes``, read again after the refusal, explains it when it is
    below that size. When it does not (it could not be read, or was not yet updated), the real
    limit is below the refused size: half of it, so that a few refusals find any limit.
    """
    if known < refused_size:
        return known
    return max(MIN_LIMIT_BYTES, refused_size // 2)
