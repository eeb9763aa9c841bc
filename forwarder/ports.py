"""The small protocols the delivery and the pipeline depend on, and the values they return.

The real adapters (``forwarder/adapters``) implement them over aiokafka and httpx; the tests'
in-memory fakes (``tests/fakes.py``) implement them too, so that every delivery path (retry,
split, isolate, park, dead-letter, pause, outage, rebalance) runs in milliseconds without a
broker or a server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition

from forwarder.core.classify import SendResult
from forwarder.core.records import RecordLike
from forwarder.core.writer_schemas import FetchedSchema

Callback = Callable[[set[TopicPartition]], Awaitable[None]]


# Error kinds of a record too large for the topic or the producer.
SIZE_ERRORS = frozenset(
    {"MessageSizeTooLargeError", "RecordListTooLargeError", "RecordTooLargeError"}
)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """One produce attempt: acknowledged by the broker, or an error of a kind.

    ``error`` is the kind (the client's exception class name: a bounded set, safe as a metric
    label); ``retriable`` False means trying again cannot help (too large, not authorized).
    ``record_level``: the error is about this record (its size, its content), not the topic
    or the producer: other records can still be written.
    """

    acknowledged: bool
    error: str = ""
    retriable: bool = True
    record_level: bool = False

    @property
    def too_large(self) -> bool:
        return self.error in SIZE_ERRORS


ACKNOWLEDGED = PublishResult(True)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """One offset commit: done, or the kind of error (the client's exception class name)."""

    ok: bool
    error: str = ""


COMMITTED = CommitResult(True)


class Sink(Protocol):
    """The endpoint: one request body to one ``database.table``; never raises."""

    async def send(self, destination: str, body: bytes) -> SendResult: ...

    async def aclose(self) -> None: ...


class Publisher(Protocol):
    """The retry-tier and dead-letter topics: one produce attempt per call; never raises."""

    async def start(self) -> None: ...

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> PublishResult: ...

    def record_limit(self, topic: str) -> int:
        """The largest record ``topic`` takes, as far as known: the smaller of its
        ``max.message.bytes`` and the producer's ``max_request_size``, in the size
        ``forwarder.core.fitting.record_size`` gives a record. Learnt again on a size error."""
        ...

    async def check(self) -> str:
        """Whether the producer can reach the brokers now: ``""``, or why not."""
        ...

    async def stop(self) -> None: ...


class Source(Protocol):
    """The consumer group member: fetch, pause and resume, seek, commit."""

    async def start(
        self, topics: Sequence[str], on_revoked: Callback, on_assigned: Callback
    ) -> None: ...

    async def fetch(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[RecordLike]]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def paused(self) -> set[TopicPartition]: ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> CommitResult: ...

    async def end_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SchemaFound:
    schema: FetchedSchema


@dataclass(frozen=True, slots=True)
class SchemaMissing:
    """The registry does not know the id (or a schema it references): an event fault."""

    detail: str


@dataclass(frozen=True, slots=True)
class RegistryUnavailable:
    """Down, slow, refusing the credentials: not the events' fault, they wait."""

    kind: str  # a bounded set, safe as a metric label: unauthorized, timeout, connection, ...
    detail: str


SchemaLookup = SchemaFound | SchemaMissing | RegistryUnavailable


class SchemaSource(Protocol):
    """The schema registry: a schema by its id (with its references); never raises."""

    async def fetch(self, schema_id: int) -> SchemaLookup: ...

    async def aclose(self) -> None: ...
