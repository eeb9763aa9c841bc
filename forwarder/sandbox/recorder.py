"""What the sandbox saw: accepted events by ``uuid``, rejections by status and code, requests."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts: dict[str, int] = {}
        self.first_seen: dict[str, float] = {}
        self.destination_of: dict[str, str] = {}
        self.by_destination: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.accepted_events = 0
        self.accepted_requests = 0
        self.request_times: list[float] = []

    def request(self) -> None:
        self.request_times.append(time.time())

    def accept(self, destination: str, events: list[dict[str, Any]]) -> None:
        now = time.time()
        counts, first = self.counts, self.first_seen
        for event in events:
            uid = str(event.get("uuid"))
            seen = counts.get(uid)
            if seen is None:
                counts[uid] = 1
                first[uid] = now
                self.destination_of[uid] = destination
            else:
                counts[uid] = seen + 1
        self.by_destination[destination] += len(events)
        self.accepted_events += len(events)
        self.accepted_requests += 1

    def reject(self, status: int, code: int | None) -> None:
        self.rejected[f"{status}:{code}" if code is not None else str(status)] += 1

    def stats(self) -> dict[str, Any]:
        distinct = len(self.counts)
        return {
            "accepted_events": self.accepted_events,
            "accepted_requests": self.accepted_requests,
            "distinct_uuids": distinct,
            "duplicates": self.accepted_events - distinct,
            "rejected": dict(self.rejected),
            "rejected_requests": sum(self.rejected.values()),
            "requests": len(self.request_times),
            "by_destination": dict(self.by_destination),
        }

    def events(self) -> list[list[Any]]:
        """``[uuid, destination, count, first_received_epoch_s]`` per distinct uuid."""
        return [[u, self.destination_of[u], c, self.first_seen[u]] for u, c in self.counts.items()]
