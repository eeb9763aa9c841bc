"""The Confluent wire format of a Kafka value, as registry-aware producers write it. Pure.

A magic byte ``0x00``, the schema's id as 4 bytes big-endian, then the payload (here JSON).
JSON text never starts with ``0x00``, so one byte tells a framed value from a bare one.
"""

from __future__ import annotations

from collections.abc import Iterator

from forwarder.core.headers import Failure

MAGIC = b"\x00"
HEADER_BYTES = 5
# What decoding a framed value gives when its schema id was not looked up yet: the pipeline
# tells it by identity and makes the partition wait; to anyone else an ``unknown_schema``.
NOT_LOOKED_UP = Failure("unknown_schema", "the schema id was not looked up in the registry")


def schema_id_of(value: bytes) -> int:
    """The schema id of a framed value (at least ``HEADER_BYTES`` long)."""
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def short_frame(value: bytes) -> Failure:
    return Failure(
        "invalid_json",
        f"a framed value (magic byte 0x00) of {len(value)} bytes: too short for its "
        f"{HEADER_BYTES}-byte header (the magic byte and a 4-byte schema id)",
    )


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` in the wire format: what a registry-aware producer writes."""
    return MAGIC + schema_id.to_bytes(4, "big") + payload


def split_framed_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, value) of a file of values one per line, bare JSON or framed.

    A framed value's 5-byte header is taken whole, whatever its bytes (id 10 holds a newline
    byte), and its JSON runs to the end of the line. Blank lines are skipped.
    """
    line, position, end = 1, 0, len(data)
    while position < end:
        start = position
        if data[position : position + 1] == MAGIC:
            position = min(position + HEADER_BYTES, end)
        stop = data.find(b"\n", position)
        stop = end if stop < 0 else stop
        value = data[start:stop].rstrip(b"\r")
        if value.strip():
            yield line, value if value[:1] == MAGIC else value.strip()
        line += 1 + data.count(b"\n", start, position)
        position = stop + 1
