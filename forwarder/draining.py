"""Draining: what the pipeline does with batches when partitions are revoked or it stops.

``drop_revoked`` takes the events of revoked partitions out of the batches still queued for the
senders, once the drain budget of a rebalance is spent: their new owner reads them again from
the last commit, so sending them here too would only duplicate them (with the same ``uuid``)
after this member no longer owns them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from forwarder.core.batcher import Batch


def drop_revoked(queue: asyncio.Queue[Batch], revoked: Collection[object]) -> int:
    """Remove the events of ``revoked`` partitions from the queued batches; return how many."""
    kept: list[Batch] = []
    dropped = 0
    while not queue.empty():
        batch = queue.get_nowait()
        queue.task_done()
        events = [e for e in batch.events if (e.record.topic, e.record.partition) not in revoked]
        dropped += len(batch.events) - len(events)
        if len(events) == len(batch.events):
            kept.append(batch)
        elif events:
            rest = Batch(batch.destination, batch.created)
            for event in events:
                rest.add(event)
            kept.append(rest)
    for batch in kept:
        queue.put_nowait(batch)
    return dropped
