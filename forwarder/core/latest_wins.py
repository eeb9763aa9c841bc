"""The pending personalization triggers of one service: bounded, latest-wins per user (pure).

Answers are derived data: only the newest state of a user matters, so a newer trigger replaces
the pending one of its user (keeping its place in line, so a busy user is not starved), a trigger
older than ``max_age_s`` when its turn comes is dropped, and a full queue drops its oldest entry
(the likeliest to go stale anyway). Every drop is returned as a cause for the caller to count.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

SUPERSEDED = "superseded"
QUEUE_FULL = "queue_full"
STALE = "stale"


class Trigger(NamedTuple):
    """One accepted trigger event, with what the request and the output record need.

    A named tuple: one is built per accepted trigger event, on the ingest path's thread.
    """

    user_id: str
    context: tuple[tuple[str, Any], ...]  # (request field, value), in config order
    event_type: str
    event_id: str | None
    uuid: str
    time: int | None
    accepted_at: float  # monotonic seconds when the ingest endpoint accepted the event
    # The order the ingest endpoint accepted the trigger events in (per service): which of two
    # triggers of a user is the newer, whichever answer comes back first.
    seq: int = 0

    @property
    def request_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """Two triggers with the same key make the same request: one flight, one cache entry."""
        return (self.user_id, self.context)


class LatestWinsQueue:
    def __init__(self, max_entries: int, max_age_s: float) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._pending: OrderedDict[str, Trigger] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, trigger: Trigger) -> str | None:
        """Queue ``trigger``; returns the cause of the one drop this caused, if any."""
        if trigger.user_id in self._pending:
            self._pending[trigger.user_id] = trigger  # same place in line, newest content
            return SUPERSEDED
        dropped = None
        if len(self._pending) >= self.max_entries:
            self._pending.popitem(last=False)
            dropped = QUEUE_FULL
        self._pending[trigger.user_id] = trigger
        return dropped

    def pop(self, now: float) -> tuple[Trigger | None, int]:
        """The next trigger still young enough, and how many stale ones were dropped first."""
        stale = 0
        while self._pending:
            _user, trigger = self._pending.popitem(last=False)
            if now - trigger.accepted_at > self.max_age_s:
                stale += 1
                continue
            return trigger, stale
        return None, stale

    def discard(self, user_id: str) -> bool:
        """Forget the user's pending trigger (a newer one was answered another way)."""
        return self._pending.pop(user_id, None) is not None

    def clear(self) -> int:
        """Drop everything pending (the service is misconfigured); returns how many."""
        count = len(self._pending)
        self._pending.clear()
        return count


class PublishedOrder:
    """Per user, the newest trigger whose answer was handed to the output topic (pure).

    Answers come back out of order (a call retried through 500s, a cached answer going out
    while an older call is in flight), so the runner publishes an answer only if no newer
    trigger of its user was published: *newer* by ``Trigger.seq``, the order the ingest
    endpoint accepted the trigger events in, neither their Kafka positions (not comparable
    across partitions and retry tiers) nor their ``time`` (the producer's clock). The last
    ``max_users`` users are remembered (least recently published out first): an answer older
    than that many other users' answers is the only one that could slip through.
    """

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self._last: OrderedDict[str, int] = OrderedDict()

    def admit(self, user_id: str, seq: int) -> bool:
        """True, and remembered, unless a newer trigger of the user was published already."""
        last = self._last.get(user_id)
        if last is not None and seq < last:
            return False
        self._last[user_id] = seq
        self._last.move_to_end(user_id)
        if len(self._last) > self.max_users:
            self._last.popitem(last=False)
        return True

    def superseded(self, user_id: str, seq: int) -> bool:
        """Whether a newer trigger of the user was published since this one was admitted."""
        last = self._last.get(user_id)
        return last is not None and last > seq
