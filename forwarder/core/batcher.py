"""Batch policy: events grouped per destination, closed by count, bytes or linger time.

Pure: the caller passes ``now`` (monotonic seconds). A batch closes when it holds
``max_events`` events, when the next event would push its body past ``max_bytes``, or when its
first event has waited ``linger_s``. The body size counted is the exact size of the request
body ``{"events":[...]}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from forwarder.core.decode import Event

_OPEN = b'{"events":['
_CLOSE = b"]}"
_ENVELOPE = len(_OPEN) + len(_CLOSE)


@dataclass(slots=True)
class Batch:
    destination: str
    created: float
    events: list[Event] = field(default_factory=list)
    size: int = _ENVELOPE

    def add(self, event: Event) -> None:
        self.size += len(event.body) + (1 if self.events else 0)
        self.events.append(event)

    def body(self) -> bytes:
        return body_of(self.events)

    def __len__(self) -> int:
        return len(self.events)


def body_of(events: list[Event]) -> bytes:
    """The request body ``{"events":[...]}``, copying the events' bytes once."""
    if not events:
        return _OPEN + _CLOSE
    parts = [e.body for e in events]
    # Wrapping the end parts, not the joined whole, spares two copies of a 5 MB body.
    parts[0] = _OPEN + parts[0]
    parts[-1] = parts[-1] + _CLOSE
    return b",".join(parts)


class Batcher:
    def __init__(self, max_events: int, max_bytes: int, linger_s: float) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self._open: dict[str, Batch] = {}

    def add(self, event: Event, now: float) -> Sequence[Batch]:
        """Add an event; return the batches this closed (zero, one, or two)."""
        destination = event.destination
        batch = self._open.get(destination)
        closed: Sequence[Batch] = ()  # no list built for the events that close nothing
        if batch is not None and batch.size + 1 + len(event.body) > self.max_bytes:
            closed = [self._open.pop(destination)]
            batch = None
        if batch is None:
            batch = self._open[destination] = Batch(destination, now)
        events = batch.events
        batch.size += len(event.body) + (1 if events else 0)
        events.append(event)
        if len(events) >= self.max_events or batch.size >= self.max_bytes:
            closed = [*closed, self._open.pop(destination)]
        return closed

    def due(self, now: float) -> list[Batch]:
        """Close and return the batches whose linger time has passed."""
        # The same sum as next_due(): ``now - created >= linger`` can disagree with it by a
        # rounding step, and a caller waiting until next_due() would then find nothing due.
        expired = [d for d, b in self._open.items() if b.created + self.linger_s <= now]
        return [self._open.pop(d) for d in expired]

    def next_due(self) -> float | None:
        """When the oldest open batch must close, or None when none is open."""
        if not self._open:
            return None
        return min(b.created for b in self._open.values()) + self.linger_s

    def drain(self) -> list[Batch]:
        """Close every open batch (shutdown, rebalance)."""
        batches = list(self._open.values())
        self._open.clear()
        return batches

    @property
    def pending_events(self) -> int:
        return sum(len(b.events) for b in self._open.values())
