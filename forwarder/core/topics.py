"""Topic naming: the retry tiers ``<topic>.retry.<n>`` and the dead-letter ``<topic>.dlq``.

Tiers beyond the configured count (``retry.tiers`` was shortened while records were parked
there) are *stranded*: :meth:`TopicMap.adopt` takes them from the broker's topic list so they
are drained like any tier, their records sent when due and, when they fail again, moved on past
the last configured tier (to the dead-letter topic), never left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def dlq_topic(source: str) -> str:
    return f"{source}.dlq"


def retry_topic(source: str, tier: int) -> str:
    return f"{source}.retry.{tier}"


def source_of_tier(topic: str) -> str | None:
    """The source whose retry tier ``topic`` is named as, or None for another name."""
    source, sep, number = topic.rpartition(".retry.")
    return source if sep and source and number.isdigit() else None


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

    def adopt(self, existing: Iterable[str]) -> list[str]:
        """Consume the stranded tiers among ``existing`` topic names too; return them."""
        adopted = []
        for name, role in stranded_tiers(self.sources, len(self.tier_delays_s), existing):
            if name not in self._roles:
                self._roles[name] = role
                adopted.append(name)
        return adopted

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
        """The tier topic and delay after the one ``topic`` is, or None past the last
        configured tier (a stranded tier included): then the dead-letter topic."""
        role = self.role(topic)
        if role.tier >= len(self.tier_delays_s):
            return None
        return retry_topic(role.source, role.tier + 1), self.tier_delays_s[role.tier]

    def dlq_for(self, topic: str) -> str:
        return dlq_topic(self.role(topic).source)


def stranded_tiers(
    sources: Sequence[str], tier_count: int, existing: Iterable[str]
) -> list[tuple[str, TopicRole]]:
    """``<source>.retry.<n>`` topics among ``existing`` with ``n`` above ``tier_count``."""
    found = []
    for name in existing:
        for source in sources:
            prefix = f"{source}.retry."
            number = name[len(prefix) :] if name.startswith(prefix) else ""
            if (
                number.isdigit()
                and int(number) > tier_count
                and name == retry_topic(source, int(number))
            ):
                found.append((name, TopicRole(source, int(number))))
    return sorted(found, key=lambda item: (item[1].source, item[1].tier))
