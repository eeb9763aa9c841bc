"""Dispatch: which waiting batch a free sender takes next.

Pure (time passed in). Every batch the delivery still owes an answer for waits here between
its tries: new ones in arrival order, retried ones until their backoff ends. A batch in its
backoff holds no sender, so a failing batch never starves the others of senders, and with a
single sender the next batch is tried while the first one waits (failures then span batches,
which is what tells an outage from one bad batch).

- **Healthy endpoint**: the oldest ready batch whose destination may take another sender. A
  failing destination holds at most ``share_cap`` requests at once, and so does any other
  while a batch for another destination waits: a table whose requests fail or hang never takes
  every sender, and the healthy tables keep their throughput.
- **Down or paused endpoint**: one probe at a time (the endpoint's health says when); probes
  cycle through every waiting batch, due or still in its backoff: never probed first, oldest
  first, so never the same batch twice in a row while another waits. A batch that fails every probe therefore cannot
  keep the endpoint down once other traffic exists.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from forwarder.core.budget import RetryBudget
from forwarder.core.decode import Event


@dataclass(eq=False, slots=True)
class Job:
    """A batch between its tries: what is left of it and what its tries have cost."""

    destination: str
    events: list[Event]
    created: float  # when it was first batched: the oldest is probed first
    budget: RetryBudget
    ready_at: float = 0.0  # the end of its backoff
    outages: int = 0  # the endpoint's outage count when it was last tried
    first_failed: float | None = None  # send time of its first failed try
    # Its events were shown to fail on their own (split off while other batches to the table
    # were accepted, or back from a retry tier): its failures are no sign of an outage.
    suspect: bool = False
    halved: bool = False  # a half of a split batch
    probed: int = 0  # when it was last a probe (the dispatcher's probe count then; 0: never)


class Dispatcher:
    def __init__(self, share_cap: int) -> None:
        self.share_cap = max(1, share_cap)
        self._fresh: deque[Job] = deque()  # never tried, in arrival order
        self._later: list[Job] = []  # tried, waiting for their backoff to end
        self.in_flight: Counter[str] = Counter()
        self._probes = 0

    def __len__(self) -> int:
        return len(self._fresh) + len(self._later)

    def add(self, job: Job) -> None:
        self._fresh.append(job)

    def later(self, job: Job, ready_at: float) -> None:
        job.ready_at = ready_at
        self._later.append(job)

    def take(self, now: float, failing: Callable[[str], bool]) -> Job | None:
        """The next batch to send now (its destination's in-flight count taken), or None."""
        due = [job for job in self._later if job.ready_at <= now]
        if due:
            due.sort(key=_created)
        over_share: Job | None = None  # a healthy destination's, if no other one waits
        for source in (due, self._fresh):
            for job in source:
                destination = job.destination
                if self.in_flight[destination] >= self.share_cap:
                    if over_share is None and not failing(destination):
                        over_share = job
                    continue
                return self._taken(job)
        return None if over_share is None else self._taken(over_share)

    def _taken(self, job: Job) -> Job:
        self._remove(job)
        self.in_flight[job.destination] += 1
        return job

    def take_probe(self) -> Job | None:
        """The waiting batch, due or not, probed least recently (never probed first), the
        oldest of those: probes cycle through every waiting batch."""
        candidates = [*self._later, *list(self._fresh)[:1]]
        if not candidates:
            return None
        job = min(candidates, key=_probe_order)
        self._probes += 1
        job.probed = self._probes
        return self._taken(job)

    def done(self, job: Job) -> None:
        """A taken batch's try is over (whatever it came to)."""
        self.in_flight[job.destination] -= 1
        if self.in_flight[job.destination] <= 0:
            del self.in_flight[job.destination]

    def next_ready(self, now: float) -> float:
        """When the next retried batch's backoff ends (now if one is due, inf if none waits)."""
        if self._fresh:
            return now
        return min((job.ready_at for job in self._later), default=math.inf)

    def drop(self, revoked: Collection[object]) -> int:
        """Remove the events of ``revoked`` partitions from the waiting batches; how many."""
        dropped = 0
        for source in (self._fresh, self._later):
            for job in list(source):
                kept = [
                    e for e in job.events if (e.record.topic, e.record.partition) not in revoked
                ]
                dropped += len(job.events) - len(kept)
                job.events = kept
                if not kept:
                    source.remove(job)
        return dropped

    def clear(self) -> None:
        self._fresh.clear()
        self._later.clear()

    def _remove(self, job: Job) -> None:
        if self._fresh and self._fresh[0] is job:
            self._fresh.popleft()
        elif job in self._fresh:
            self._fresh.remove(job)
        else:
            self._later.remove(job)


def _created(job: Job) -> float:
    return job.created


def _probe_order(job: Job) -> tuple[int, float]:
    return job.probed, job.created
