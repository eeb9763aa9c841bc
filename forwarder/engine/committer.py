"""Offset commits, in a task of their own and one at a time, each bounded in time.

aiokafka's commit waits for a group coordinator (for ever while none answers), so the main
loop never awaits one: the periodic commit runs here, and the commits of a rebalance or a
shutdown are bounded by their own budgets. A failed or timed-out commit is counted
(``forwarder_kafka_errors_total{operation="commit"}``) and logged; nothing is lost by it, the
next commit (or the partition's next owner) covers the same offsets: at least once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from forwarder.core.offsets import OffsetTracker, Partition
from forwarder.ports import CommitResult, Source
from forwarder.telemetry.kafka_errors import KafkaErrors
from forwarder.telemetry.metrics import Metrics

COMMIT_TIMEOUT_S = 10.0


class Committer:
    def __init__(
        self,
        tracker: OffsetTracker,
        source: Source,
        metrics: Metrics,
        errors: KafkaErrors,
        clock: Callable[[], float],
    ) -> None:
        self._tracker = tracker
        self._source = source
        self._metrics = metrics
        self._errors = errors
        self._clock = clock
        self._lock = asyncio.Lock()

    async def commit(self, timeout_s: float = COMMIT_TIMEOUT_S, why: str = "periodic") -> bool:
        """Commit what is done, waiting at most ``timeout_s`` (queueing included); True if
        there was nothing to commit or the broker took it."""
        started = self._clock()
        try:
            async with asyncio.timeout(timeout_s):
                async with self._lock:
                    offsets = self._owned(self._tracker.to_commit())
                    if not offsets:
                        return True
                    result = await self._source.commit(offsets)
        except TimeoutError:
            result = CommitResult(False, "Timeout")
            offsets = self._owned(self._tracker.to_commit())
        if result.ok:
            self._tracker.mark_committed(offsets)
            self._metrics.commit_seconds.observe(self._clock() - started)
            return True
        self._errors.report(
            "commit",
            result.error,
            why=why,
            partitions=_names(offsets),
            note="not lost: the next commit, or the partition's next owner, covers these offsets",
        )
        return False

    def _owned(self, offsets: dict[Partition, int]) -> dict[Partition, int]:
        """Only the partitions assigned now: the consumer refuses a commit naming any other
        (aiokafka: IllegalStateError, for the whole commit). One still tracked here was lost
        without a revoke; its new owner covers it from the last commit. Counted as
        ``forwarder_kafka_errors_total{operation="commit",error="NotAssigned"}``."""
        assigned = self._source.assignment()
        owned = {tp: o for tp, o in offsets.items() if tp in assigned}
        if len(owned) < len(offsets):
            lost = [tp for tp in offsets if tp not in assigned]
            self._errors.report(
                "commit",
                "NotAssigned",
                partitions=_names(dict.fromkeys(lost, 0)),
                note="left out of the commit: another member owns them now",
            )
        return owned

    async def run(self, interval_s: float) -> None:
        """Commit every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.commit()


def _names(offsets: Mapping[Partition, int]) -> list[str]:
    """``topic-partition`` names for a log line (at most 20)."""
    return sorted("-".join(map(str, tp)) if isinstance(tp, tuple) else str(tp) for tp in offsets)[
        :20
    ]
