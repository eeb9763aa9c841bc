"""Schema ids not looked up yet: the partitions that need one wait while they are looked up.

Decoding a framed record whose id was never looked up gives ``NOT_LOOKED_UP``; the pipeline
then calls ``wait``: the partition is rewound to that record and paused (as a retry tier
waiting for its due time is), and every such id from there on is looked up; the records
before it go on, and nothing from it on is tracked or decoded. When the ids are
answered (found and compiled, or not in the registry: ``unknown_schema`` dead letters) the
partition is resumed and its records come again, now decodable. Nothing is held in memory
and nothing past the first waiting record is committed, so a rebalance or a stop needs no
special care: the next owner reads from there.

A registry that is down, slow or refusing the credentials is not the events' fault: the
lookups are retried (1 s, doubling up to ``registry.backoff_max_s``), the partitions that need
them wait, ids already cached keep flowing, nothing is dead-lettered. It shows in
``/readyz`` (not ready while a partition waits on a failing registry), in
``forwarder_registry_waiting_partitions`` and ``forwarder_registry_unavailable``, and in a
``registry_unavailable`` log line once per ``LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import structlog
from aiokafka import TopicPartition

from forwarder.adapters.bundle import Adapters
from forwarder.config import Config
from forwarder.core.records import RecordLike
from forwarder.core.schemas import SchemaRegistry
from forwarder.core.writer_schemas import WriterSchemas
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaSource, Source
from forwarder.telemetry.metrics import Metrics

FIRST_BACKOFF_S = 1.0
LOG_EVERY_S = 30.0
# Ids looked up at once: a fetch of corrupted values can name thousands.
CONCURRENCY = 8


class SchemaGate:
    @classmethod
    def of(
        cls,
        config: Config,
        local: SchemaRegistry,
        io: Adapters,
        metrics: Metrics,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        clock: Callable[[], float],
    ) -> SchemaGate:
        """The pipeline's gate (``io.registry`` is None when ``registry.url`` is empty)."""
        writers = WriterSchemas(
            local,
            registry=io.registry is not None,
            local_schemas=config.registry.local_schemas,
            routes=config.routes,
        )
        backoff = config.registry.backoff_max_s
        return cls(io.registry, writers, io.source, metrics, spawn, clock, backoff)

    def __init__(
        self,
        client: SchemaSource | None,
        writers: WriterSchemas,
        source: Source,
        metrics: Metrics,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        clock: Callable[[], float],
        backoff_max_s: float = 10.0,
    ) -> None:
        self._client = client
        self.writers = writers
        self._writers = writers
        self._source = source
        self._metrics = metrics
        self._spawn = spawn
        self._clock = clock
        self._backoff_max_s = backoff_max_s
        self._log = structlog.get_logger("forwarder.registry")
        self.waiting: dict[TopicPartition, set[int]] = {}
        self._wanted: set[int] = set()
        self._looking = False
        self._failing_since: float | None = None
        self._failure: RegistryUnavailable | None = None
        self._logged_at = 0.0

    def admit(
        self, tp: TopicPartition, records: Sequence[RecordLike], now: float
    ) -> Sequence[RecordLike]:
        """A fetch's records to decode: none while the partition waits, else all."""
        if self._client is None:
            return records
        self._writers.expire(now)
        if tp in self.waiting:  # paused and rewound: whatever still comes, comes again later
            if records:
                self._source.seek(tp, records[0].offset)
                self._source.pause([tp])
            return ()
        return records

    def wait(
        self, tp: TopicPartition, records: Sequence[RecordLike], first: RecordLike, now: float
    ) -> Sequence[RecordLike]:
        """Decoding met ``first``, framed with an id not looked up: rewind the partition to
        it, pause it, have every such id from there on looked up; the records before it."""
        index = next(i for i, record in enumerate(records) if record is first)
        cut = self._writers.unresolved(records[index:], now)
        ids = cut[1] if cut is not None else set()
        self._source.seek(tp, first.offset)
        self._source.pause([tp])
        self.waiting[tp] = ids
        self._metrics.registry_waiting.set(len(self.waiting))
        self._wanted |= ids
        if not self._looking:
            self._looking = True
            self._spawn(self._lookups())
        return records[:index]

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Revoked partitions wait no more here; ids only they needed are not asked for."""
        for tp in revoked:
            self.waiting.pop(tp, None)
        self._wanted &= {i for ids in self.waiting.values() for i in ids}
        self._metrics.registry_waiting.set(len(self.waiting))

    def unready(self, now: float) -> str:
        """Why ``/readyz`` is 503 on account of the registry, or ``""``."""
        if not self.waiting or self._failing_since is None or self._failure is None:
            return ""
        ids = sorted({i for wanted in self.waiting.values() for i in wanted})
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        return (
            f"schema registry unavailable for {now - self._failing_since:.0f}s "
            f"({self._failure.detail}); {len(self.waiting)} partition(s) wait for schema ids "
            f"{shown}; nothing is dead-lettered"
        )

    async def _lookups(self) -> None:
        """Ask for the wanted ids until each is answered; back off while the registry fails."""
        assert self._client is not None
        delay = FIRST_BACKOFF_S
        try:
            while self._wanted:
                batch = sorted(self._wanted)[:CONCURRENCY]
                outcomes = await asyncio.gather(*(self._client.fetch(i) for i in batch))
                now = self._clock()
                failure: RegistryUnavailable | None = None
                for schema_id, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, RegistryUnavailable):
                        self._metrics.registry_lookups.labels(outcome.kind).inc()
                        failure = outcome
                        continue
                    found = isinstance(outcome, SchemaFound)
                    self._metrics.registry_lookups.labels("found" if found else "not_found").inc()
                    if isinstance(outcome, SchemaFound):
                        self._writers.learn(schema_id, outcome.schema, "", now)
                    else:
                        self._writers.learn(schema_id, None, outcome.detail, now)
                        self._log.warning(
                            "schema_not_found",
                            schema_id=schema_id,
                            detail=outcome.detail,
                            note="its events are dead-lettered as unknown_schema",
                        )
                    self._wanted.discard(schema_id)
                self._metrics.registry_schemas.set(self._writers.cached)
                self._release(now)
                if failure is None:
                    self._recovered(now)
                    delay = FIRST_BACKOFF_S
                    continue
                self._failed(failure, now)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
        finally:
            self._looking = False

    def _release(self, now: float) -> None:
        """Partitions whose ids are all answered wait no more (flow control resumes them)."""
        known = self._writers.known
        for tp in [tp for tp, ids in self.waiting.items() if all(known(i, now) for i in ids)]:
            del self.waiting[tp]
        self._metrics.registry_waiting.set(len(self.waiting))

    def _failed(self, failure: RegistryUnavailable, now: float) -> None:
        self._failure = failure
        if self._failing_since is None:
            self._failing_since = now
            self._metrics.registry_unavailable.set(1)
        elif now - self._logged_at < LOG_EVERY_S:
            return
        self._logged_at = now
        self._log.warning(
            "registry_unavailable",
            cause=failure.detail,
            for_s=round(now - self._failing_since, 1),
            waiting_partitions=sorted(f"{tp.topic}-{tp.partition}" for tp in self.waiting),
            schema_ids=sorted(self._wanted)[:20],
            note="these partitions wait; cached schema ids keep flowing; nothing is dead-lettered",
        )

    def _recovered(self, now: float) -> None:
        if self._failing_since is None:
            return
        self._log.info("registry_available", after_s=round(now - self._failing_since, 1))
        self._failing_since = None
        self._failure = None
        self._metrics.registry_unavailable.set(0)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
