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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

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
class _PartitionState:
    pending: deque[int] = field(default_factory=deque)
    # Kafka timestamps (ms) of the pending records, in step with ``pending``: the head's is the
    # age of the oldest record not yet done, the figure an operator alerts on.
    stamps: deque[int] = field(default_factory=deque)
    # Bytes of each pending record (record_bytes), in step with ``pending``; ``held`` is the sum
    # over the records not yet done.
    sizes: deque[int] = field(default_factory=deque)
    held: int = 0
    done: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None


def _finish(state: _PartitionState, offset: int, size: int) -> int:
    """Mark ``offset`` of one partition done; return the bytes this frees.

    ``size`` is the record's :func:`record_bytes`, used when it finishes ahead of an earlier
    record; at the head the size kept when it was added is freed. Offsets no longer pending
    (committed past, or forgotten by a re-fetch) free nothing.
    """
    pending = state.pending
    if not pending or offset < pending[0]:
        return 0
    if offset == pending[0]:
        pending.popleft()
        state.stamps.popleft()
        size = state.sizes.popleft()
        done = state.done
        while done and pending and pending[0] in done:
            done.remove(pending.popleft())
            state.stamps.popleft()
            state.sizes.popleft()  # freed when it was marked done
    elif offset <= pending[-1] and offset not in state.done:
        state.done.add(offset)
    else:
        return 0
    state.held -= size
    return size


class OffsetTracker:
    def __init__(self, max_pending: int, max_bytes: int | None = None) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.held_bytes = 0  # over every partition
        self._partitions: dict[Partition, _PartitionState] = {}

    def add(self, partition: Partition, offset: int, timestamp_ms: int = 0, size: int = 0) -> None:
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionState()
        if state.pending and offset <= state.pending[-1]:
            # A re-fetch after a seek: forget what was pending above it, it will come again.
            while state.pending and state.pending[-1] >= offset:
                gone, gone_size = state.pending.pop(), state.sizes.pop()
                state.stamps.pop()
                if gone in state.done:
                    state.done.remove(gone)
                else:
                    self._free(state, gone_size)
        state.pending.append(offset)
        state.stamps.append(timestamp_ms)
        state.sizes.append(size)
        state.held += size
        self.held_bytes += size
        state.next_offset = offset + 1

    def _free(self, state: _PartitionState, size: int) -> None:
        state.held -= size
        self.held_bytes -= size

    def add_all(self, partition: Partition, records: Sequence[RecordLike], now_ms: int) -> None:
        """``add`` for each record of one partition's fetch, in one step when they follow on.

        Records without a timestamp are stamped ``now_ms``.
        """
        if not records:
            return
        state = self._partitions.get(partition)
        if state is not None and state.pending and records[0].offset <= state.pending[-1]:
            for record in records:  # a re-fetch after a seek: add() forgets what it overlaps
                self.add(partition, record.offset, record.timestamp or now_ms, record_bytes(record))
            return
        if state is None:
            state = self._partitions[partition] = _PartitionState()
        sizes = [record_bytes(r) for r in records]
        held = sum(sizes)
        state.pending.extend([r.offset for r in records])
        state.stamps.extend([r.timestamp or now_ms for r in records])
        state.sizes.extend(sizes)
        state.held += held
        self.held_bytes += held
        state.next_offset = records[-1].offset + 1

    def done(self, partition: Partition, offset: int, size: int = 0) -> None:
        """Mark a record done; ``size`` is its :func:`record_bytes` (needed when it finishes
        ahead of an earlier record). Unknown partitions or offsets (revoked meanwhile) are
        ignored."""
        state = self._partitions.get(partition)
        if state is not None:
            self.held_bytes -= _finish(state, offset, size)

    def done_records(self, records: Iterable[RecordLike]) -> None:
        """:meth:`done` for each record, in one call: an accepted batch's records.

        The partition's state is looked up again only when the partition changes (a batch
        holds runs of records from one fetch).
        """
        partitions = self._partitions
        topic: str | None = None
        number = -1
        state: _PartitionState | None = None
        freed = 0
        for record in records:
            if record.partition != number or record.topic != topic:
                topic, number = record.topic, record.partition
                state = partitions.get((topic, number))
            if state is not None:
                freed += _finish(state, record.offset, record_bytes(record))
        self.held_bytes -= freed

    def committable(self, partition: Partition) -> int | None:
        """The offset to commit (the next record to read), or None when nothing was seen."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        if state.pending:
            return state.pending[0]
        return state.next_offset

    def to_commit(self) -> dict[Partition, int]:
        """Offsets that moved since the last :meth:`mark_committed`."""
        result: dict[Partition, int] = {}
        for partition, state in self._partitions.items():
            offset = state.pending[0] if state.pending else state.next_offset
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
        return len(state.pending) if state else 0

    def oldest_pending_timestamp_ms(self) -> int | None:
        """Kafka timestamp of the oldest record not yet done, over all partitions; None if none."""
        heads = [s.stamps[0] for s in self._partitions.values() if s.stamps]
        return min(heads) if heads else None

    def total_pending(self) -> int:
        return sum(len(s.pending) for s in self._partitions.values())

    def over_limit(self) -> set[Partition]:
        """Partitions to pause: as many records pending as the bound allows."""
        return {p for p, s in self._partitions.items() if len(s.pending) >= self.max_pending}

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
