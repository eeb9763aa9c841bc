"""Offset tracking: which offset may be committed, per partition, and which partitions to pause.

A record is *done* once its event was accepted by the endpoint or its copy acknowledged on a
retry or dead-letter topic. The committable offset of a partition is the lowest offset not
yet done (or one past the highest seen when everything is done): committing it can never
skip an unfinished record, whatever order records finish in.

Records of a partition arrive in increasing offset order (Kafka guarantees it per fetch
position); a record seen again after a rebalance is tracked afresh.

Memory is bounded twice: per partition by the count of records pending, and per process by
the bytes they hold (:func:`record_bytes`: the value as read, the request body spliced from it
and a fixed overhead per record); a record's bytes are freed when it is done, whatever order
records finish in.

Kept per fetch, not per record: each partition's fetch becomes one chunk holding a flag, a
Kafka timestamp and a size per record in flat lists, and a record is found in its chunk by
arithmetic on its offset (a bisection when compaction left gaps). Marking an accepted batch's
records done is then a few operations per record and moving the committable offset a scan of
the flags in C: this runs for every event.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from forwarder.core.records import RecordLike

Partition = Hashable
# What one pending record holds besides its value and body: the consumer record, its key and
# headers, the Event tuple and its uuid string, the offset and timestamp entries here.
RECORD_OVERHEAD_BYTES = 600


def record_bytes(record: RecordLike) -> int:
    """The memory a record holds until it is done: its value, the body spliced from it (the
    value plus a ``uuid`` and maybe a ``time``: about 60 bytes more), a fixed overhead."""
    value = record.value
    return 2 * len(value) + 60 + RECORD_OVERHEAD_BYTES if value else RECORD_OVERHEAD_BYTES


@dataclass(slots=True)
class _Chunk:
    """The records of one partition's fetch, ``first`` to ``last``, in offset order."""

    first: int
    last: int
    offsets: list[int] | None  # None when the offsets are first..last without a gap
    stamps: list[int]  # Kafka timestamps (ms): the head's is the age of the oldest pending
    sizes: list[int]  # record_bytes of each record
    flags: bytearray  # 1 once the record is done
    head: int = 0  # the first record not done

    def index(self, offset: int) -> int:
        """Where ``offset`` (between first and last) is in this chunk; -1 in a gap."""
        offsets = self.offsets
        if offsets is None:
            return offset - self.first
        i = bisect_left(offsets, offset)
        return i if offsets[i] == offset else -1

    def at_or_after(self, offset: int) -> int:
        """The index of the first record at or after ``offset`` (0 to the chunk's length)."""
        if offset <= self.first:
            return 0
        if self.offsets is None:
            return min(offset - self.first, len(self.flags))
        return bisect_left(self.offsets, offset)


_first = attrgetter("first")


@dataclass(slots=True)
class _PartitionState:
    chunks: deque[_Chunk] = field(default_factory=deque)
    count: int = 0  # records from the head of the first chunk on, done or not
    held: int = 0  # bytes of the records not done
    next_offset: int | None = None
    committed: int | None = None


def _chunk_of(state: _PartitionState, offset: int) -> _Chunk | None:
    """The chunk whose range holds ``offset``: chunks follow one another in offset order."""
    chunks = state.chunks
    i = bisect_right(chunks, offset, key=_first) - 1
    if i >= 0 and offset <= chunks[i].last:
        return chunks[i]
    return None


def _committable(state: _PartitionState) -> int | None:
    """The offset of the first record not done, or one past the last read when all are."""
    if not state.chunks:
        return state.next_offset
    chunk = state.chunks[0]
    return chunk.first + chunk.head if chunk.offsets is None else chunk.offsets[chunk.head]


def _advance(state: _PartitionState) -> None:
    """Move the head past the records done; drop the chunks done entirely."""
    chunks = state.chunks
    while chunks:
        chunk = chunks[0]
        head = chunk.flags.find(0, chunk.head)
        if head == -1:
            state.count -= len(chunk.flags) - chunk.head
            chunks.popleft()
            continue
        state.count -= head - chunk.head
        chunk.head = head
        return


class OffsetTracker:
    def __init__(self, max_pending: int, max_bytes: int | None = None) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.held_bytes = 0  # over every partition
        self._partitions: dict[Partition, _PartitionState] = {}

    def add(self, partition: Partition, offset: int, timestamp_ms: int = 0, size: int = 0) -> None:
        """Track one record read (``size``: its :func:`record_bytes`)."""
        self._append(partition, offset, offset, None, [timestamp_ms], [size])

    def add_all(self, partition: Partition, records: Sequence[RecordLike], now_ms: int) -> None:
        """Track one partition's fetch, records in offset order; those without a timestamp are
        stamped ``now_ms``."""
        if not records:
            return
        first, last = records[0].offset, records[-1].offset
        self._append(
            partition,
            first,
            last,
            None if last - first + 1 == len(records) else [r.offset for r in records],
            [r.timestamp or now_ms for r in records],
            [record_bytes(r) for r in records],
        )

    def _append(
        self,
        partition: Partition,
        first: int,
        last: int,
        offsets: list[int] | None,
        stamps: list[int],
        sizes: list[int],
    ) -> None:
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionState()
        elif state.chunks and first <= state.chunks[-1].last:
            self._truncate(state, first)  # a re-fetch after a seek: it will all come again
        state.chunks.append(_Chunk(first, last, offsets, stamps, sizes, bytearray(len(sizes))))
        state.count += len(sizes)
        held = sum(sizes)
        state.held += held
        self.held_bytes += held
        state.next_offset = last + 1

    def _truncate(self, state: _PartitionState, offset: int) -> None:
        """Forget the records from ``offset`` on, freeing those not done."""
        chunks = state.chunks
        while chunks and chunks[-1].last >= offset:
            chunk = chunks[-1]
            keep = chunk.at_or_after(offset)  # records kept: those before it
            cut = max(chunk.head, keep)  # those before the head are done: nothing to free
            freed = sum(
                s for s, f in zip(chunk.sizes[cut:], chunk.flags[cut:], strict=True) if not f
            )
            state.held -= freed
            self.held_bytes -= freed
            state.count -= len(chunk.flags) - cut
            if keep == 0:
                chunks.pop()
                continue
            del chunk.stamps[keep:], chunk.sizes[keep:], chunk.flags[keep:]
            if chunk.offsets is not None:
                del chunk.offsets[keep:]
                chunk.last = chunk.offsets[-1]
            else:
                chunk.last = chunk.first + keep - 1
            chunk.head = min(chunk.head, keep)
        _advance(state)

    def done(self, partition: Partition, offset: int) -> None:
        """Mark a record done. Unknown partitions or offsets (revoked meanwhile, forgotten by a
        re-fetch, committed past) are ignored."""
        state = self._partitions.get(partition)
        chunk = _chunk_of(state, offset) if state is not None else None
        if state is None or chunk is None:
            return
        i = chunk.index(offset)
        if i >= 0 and not chunk.flags[i]:
            chunk.flags[i] = 1
            self._settle(state, chunk.sizes[i])

    def done_records(self, records: Iterable[RecordLike]) -> None:
        """:meth:`done` for each record, in one call: an accepted batch's records.

        A batch holds runs of records from one fetch: the chunk is looked up again only when
        the record is not in the last one's range.
        """
        partitions = self._partitions
        topic: str | None = None
        number = -1
        state: _PartitionState | None = None
        first, last = 0, -1  # the current chunk's range: empty until one is found
        offsets: list[int] | None = None
        flags = bytearray()
        sizes: list[int] = []
        freed = 0
        for record in records:
            offset = record.offset
            if not (
                first <= offset <= last and record.partition == number and record.topic == topic
            ):
                if state is not None:
                    self._settle(state, freed)
                    freed = 0
                topic, number = record.topic, record.partition
                state = partitions.get((topic, number))
                chunk = _chunk_of(state, offset) if state is not None else None
                if chunk is None:
                    first, last = 0, -1
                    continue
                first, last, offsets = chunk.first, chunk.last, chunk.offsets
                flags, sizes = chunk.flags, chunk.sizes
            if offsets is None:  # _Chunk.index, inlined: this runs once per event
                i = offset - first
            else:
                i = bisect_left(offsets, offset)
                if offsets[i] != offset:
                    continue
            if not flags[i]:
                flags[i] = 1
                freed += sizes[i]
        if state is not None:
            self._settle(state, freed)

    def _settle(self, state: _PartitionState, freed: int) -> None:
        state.held -= freed
        self.held_bytes -= freed
        _advance(state)

    def committable(self, partition: Partition) -> int | None:
        """The offset to commit (the next record to read), or None when nothing was seen."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        return _committable(state)

    def to_commit(self) -> dict[Partition, int]:
        """Offsets that moved since the last :meth:`mark_committed`."""
        result: dict[Partition, int] = {}
        for partition, state in self._partitions.items():
            offset = _committable(state)
            if offset is not None and offset != state.committed:
                result[partition] = offset
        return result

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    def pending(self, partition: Partition) -> int:
        state = self._partitions.get(partition)
        return state.count if state else 0

    def oldest_pending_timestamp_ms(self) -> int | None:
        """Kafka timestamp of the oldest record not yet done, over all partitions; None if none."""
        heads = [
            s.chunks[0].stamps[s.chunks[0].head] for s in self._partitions.values() if s.chunks
        ]
        return min(heads) if heads else None

    def total_pending(self) -> int:
        return sum(s.count for s in self._partitions.values())

    def over_limit(self) -> set[Partition]:
        """Partitions to pause: as many records pending as the bound allows."""
        return {p for p, s in self._partitions.items() if s.count >= self.max_pending}

    def over_bytes(self) -> bool:
        """The pending records hold as many bytes as the bound allows: pause everything."""
        return self.max_bytes is not None and self.held_bytes >= self.max_bytes

    def under_bytes_resume_mark(self) -> bool:
        """Drained to half the byte bound: resume (as for the count, half avoids flapping)."""
        return self.max_bytes is None or self.held_bytes <= self.max_bytes // 2

    def under_resume_mark(self, partitions: Iterable[Partition]) -> set[Partition]:
        """Of the given paused partitions, those drained to half the bound: resume them.

        Resuming at half rather than just under the bound avoids pausing and resuming on
        every record.
        """
        mark = self.max_pending // 2
        return {p for p in partitions if self.pending(p) <= mark}

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drop revoked partitions: late results for them will be ignored."""
        for partition in partitions:
            state = self._partitions.pop(partition, None)
            if state is not None:
                self.held_bytes -= state.held

    @property
    def partitions(self) -> list[Partition]:
        return list(self._partitions)
