"""Topic naming: the retry tiers ``<topic>.retry.<n>`` and the dead-letter ``<topic>.dlq``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def dlq_topic(source: str) -> str:
    return f"{source}.dlq"


def retry_topic(source: str, tier: int) -> str:
    return f"{source}.retry.{tier}"


@dataclass(frozen=True, slots=True)
class TopicRole:
    """What a consumed topic is: a source (tier 0) or retry tier ``tier`` of ``source``."""

    source: str
    tier: int


class TopicMap:
    """The topics one forwarder consumes, and what each of them is."""

    def __init__(self, sources: Sequence[str], tier_delays_s: Sequence[float]) -> None:
        self.sources = tuple(sources)
        self.tier_delays_s = tuple(tier_delays_s)
        self._roles: dict[str, TopicRole] = {}
        for source in self.sources:
            self._roles[source] = TopicRole(source, 0)
            for tier in range(1, len(self.tier_delays_s) + 1):
                self._roles[retry_topic(source, tier)] = TopicRole(source, tier)

    @property
    def consumed(self) -> list[str]:
        return list(self._roles)

    @property
    def suffixes(self) -> list[str]:
        """Suffixes of the topics to create beside each source."""
        return [f".retry.{n}" for n in range(1, len(self.tier_delays_s) + 1)] + [".dlq"]

    def role(self, topic: str) -> TopicRole:
        return self._roles.get(topic) or TopicRole(topic, 0)

    def next_tier(self, topic: str) -> tuple[str, float] | None:
        """The tier topic and delay after the one ``topic`` is, or None past the last tier."""
        role = self.role(topic)
        if role.tier >= len(self.tier_delays_s):
            return None
        return retry_topic(role.source, role.tier + 1), self.tier_delays_s[role.tier]

    def dlq_for(self, topic: str) -> str:
        return dlq_topic(self.role(topic).source)
