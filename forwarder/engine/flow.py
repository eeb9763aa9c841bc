"""Flow control: which assigned partitions are fetched from, and which are paused, and why.

- *everything* is paused while the endpoint is paused (not while it is down: probes rotate
  through the batches read meanwhile), while a retry or dead-letter
  topic refuses writes for good, and while the records not yet done hold
  ``kafka.max_pending_bytes`` (until half of it is freed): memory bounded in bytes;
- a partition with ``kafka.max_pending_per_partition`` records pending is paused until half of
  them are done (backpressure per partition);
- a retry-tier partition is held (paused) until its head record is due
  (``forwarder.core.tiers``), rewound to that record;
- a partition waiting for schema ids to be looked up stays paused (``forwarder.engine.schema_gate``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import structlog
from aiokafka import TopicPartition

from forwarder.core.offsets import OffsetTracker
from forwarder.core.records import RecordLike
from forwarder.core.tiers import due_prefix
from forwarder.ports import Source
from forwarder.telemetry.metrics import Metrics


class FlowControl:
    def __init__(self, source: Source, tracker: OffsetTracker, metrics: Metrics) -> None:
        self._source = source
        self._tracker = tracker
        self._metrics = metrics
        self._log = structlog.get_logger("forwarder.engine.pipeline")
        self._backpressured: set[TopicPartition] = set()
        self._held: dict[TopicPartition, float] = {}  # tier partitions held until a due time
        self.bytes_paused = False

    def due_records(
        self, tp: TopicPartition, records: Sequence[RecordLike], now: float, now_ms: int
    ) -> Sequence[RecordLike]:
        """A retry tier's records up to the first one not yet due: rewind to that one and hold
        the partition (paused) until it is due; the rest come again then."""
        count, wait_s = due_prefix(records, now_ms)
        if wait_s is not None:
            self._source.seek(tp, records[count].offset)
            self._source.pause([tp])
            self._held[tp] = now + wait_s
        return records[:count]

    def deadlines(self) -> Iterable[float]:
        """When held tier partitions come due."""
        return self._held.values()

    def control(self, now: float, *, stop_all: bool, hold: Collection[TopicPartition] = ()) -> None:
        """Pause and resume partitions for what is pending now; ``stop_all`` pauses all;
        ``hold`` ones stay paused."""
        assigned = self._source.assignment()
        self._bound_bytes()
        for tp in [tp for tp, until in self._held.items() if until <= now]:
            del self._held[tp]
        if stop_all or self.bytes_paused:
            self._source.pause(assigned)
            return
        over = {tp for tp in self._tracker.over_limit() if tp in assigned}
        newly = over - self._backpressured
        if newly:
            self._source.pause(newly)
            self._backpressured |= newly
        release = self._tracker.under_resume_mark(self._backpressured)
        self._backpressured -= release
        held = set(self._held).union(hold)
        self._source.resume((assigned - self._backpressured - held) & self._source.paused())

    def _bound_bytes(self) -> None:
        """Pause everything at ``kafka.max_pending_bytes``; resume at half of it."""
        tracker = self._tracker
        self._metrics.pending_bytes.set(tracker.held_bytes)
        if not self.bytes_paused and tracker.over_bytes():
            self.bytes_paused = True
            self._log.warning(
                "memory_bound_reached",
                pending_bytes=tracker.held_bytes,
                pending_records=tracker.total_pending(),
                note="fetching paused until half of kafka.max_pending_bytes is freed",
            )
        elif self.bytes_paused and tracker.under_bytes_resume_mark():
            self.bytes_paused = False
            self._log.info("memory_bound_released", pending_bytes=tracker.held_bytes)

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self._backpressured.discard(tp)
            self._held.pop(tp, None)
