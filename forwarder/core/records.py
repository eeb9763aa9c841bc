"""What the core needs to know of a Kafka record, and where an event first came from.

The core takes any object with these attributes (aiokafka's ``ConsumerRecord`` has them), so
records flow from the consumer into the core without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class RecordLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event was first read: kept through retry tiers and replays."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
