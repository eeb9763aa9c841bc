"""The retry-tier schedule: which of a tier partition's fetched records are due (pure).

A record parked on ``<topic>.retry.<n>`` carries ``forwarder.not_before`` (epoch ms). A tier
partition is consumed in offset order, and records are parked in time order, so the first
record not yet due holds back every record after it: the consumer rewinds to it and pauses the
partition until then, instead of sleeping on a record (design.md section 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from forwarder.core.headers import NOT_BEFORE, header_value
from forwarder.core.records import RecordLike


class Due(NamedTuple):
    """``ready`` records are due; when fewer than all, the next one is due in ``wait_s``."""

    ready: int
    wait_s: float | None


def not_before_ms(record: RecordLike) -> int:
    """The record's due time in epoch ms; 0 (due now) when absent or unreadable."""
    raw = header_value(record.headers, NOT_BEFORE) if record.headers else None
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def due_prefix(records: Sequence[RecordLike], now_ms: int) -> Due:
    """How many records, from the first, are due at ``now_ms``; and how long until the next is."""
    for index, record in enumerate(records):
        wait_ms = not_before_ms(record) - now_ms
        if wait_ms > 0:
            return Due(index, wait_ms / 1000)
    return Due(len(records), None)
