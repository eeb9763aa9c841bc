"""Consumer lag per partition (log end minus the next offset to commit) and the oldest age."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiokafka import TopicPartition

from forwarder.core.offsets import OffsetTracker
from forwarder.ports import Source
from forwarder.telemetry.metrics import Metrics

# How often log end offsets are asked for: a paused partition gets no fetch responses, so its
# highwater would freeze while producers keep writing.
END_OFFSETS_EVERY_S = 5.0


class LagObserver:
    def __init__(
        self,
        source: Source,
        tracker: OffsetTracker,
        metrics: Metrics,
        wall_clock: Callable[[], float],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._source = source
        self._tracker = tracker
        self._metrics = metrics
        self._wall = wall_clock
        self._spawn = spawn
        self._log_ends: dict[TopicPartition, int] = {}
        self._log_ends_due = 0.0

    def observe(self, now: float) -> None:
        assigned = self._source.assignment()
        if now >= self._log_ends_due and assigned:
            self._log_ends_due = now + END_OFFSETS_EVERY_S
            self._spawn(self._refresh_log_ends(assigned))
        for tp in assigned:
            ends = (self._source.highwater(tp), self._log_ends.get(tp))
            known = [end for end in ends if end is not None]
            position = self._tracker.committable(tp)
            if known and position is not None:
                lag = max(0, max(known) - position)
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        oldest = self._tracker.oldest_pending_timestamp_ms()
        age = 0.0 if oldest is None else max(0.0, self._wall() - oldest / 1000)
        self._metrics.oldest_pending_age.set(age)

    async def _refresh_log_ends(self, partitions: set[TopicPartition]) -> None:
        self._log_ends.update(await self._source.end_offsets(sorted(partitions)))

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self._log_ends.pop(tp, None)
            # A partition another replica now owns is its lag to report, not ours.
            self._metrics.lag.remove(tp.topic, str(tp.partition))
