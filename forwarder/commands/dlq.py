"""``forwarder dlq stats`` and ``forwarder dlq replay``: what operators run after an incident.

Both read a dead-letter topic only up to the end offsets seen when they start, so a replayed
event that fails again and lands back in the topic is not read twice in one run.

``replay`` is resumable and loss-free: it commits its progress in a consumer group of its
own per selection (``dead_letters.progress_group``: ``<group_id>.replay.<digest>`` of the
filters, ``--to`` and ``--revalidate``, unless ``--group`` names one) only after the broker
acknowledged every record it re-produced up to that offset. Killed and run again with the same
options, it continues where the last commit left it; a run with other filters starts from the
beginning, so records an earlier selection skipped or never selected stay replayable;
``--from-beginning`` rescans. Records are re-produced with
their original key and value bytes; see ``forwarder.core.dead_letters`` for the headers.

A dead letter written compressed to fit its topic is replayed uncompressed. One whose value
was cut to fit (``forwarder.value.truncated``) is never replayed as it is: its original is
read again from its ``forwarder.original.*`` coordinates and replayed if the source still
retains it unchanged (same SHA-256); otherwise it is skipped with a line saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from forwarder.adapters.kafka_common import connection_kwargs
from forwarder.adapters.kafka_diagnose import startup_error
from forwarder.adapters.kafka_publisher import MAX_REQUEST_BYTES
from forwarder.config import KafkaConfig
from forwarder.core import dead_letters as dl
from forwarder.core.headers import origin_of
from forwarder.core.schemas import SchemaRegistry
from forwarder.core.token_bucket import TokenBucket
from forwarder.errors import FatalError


@dataclass
class ReplayOptions:
    topic: str
    selection: dl.Selection = field(default_factory=dl.Selection)
    to: str | None = None
    limit: int | None = None
    group_id: str = "forwarder.replay"
    from_beginning: bool = False
    revalidate: SchemaRegistry | None = None
    rate: float = 0.0
    dry_run: bool = False


@dataclass
class ReplaySummary:
    scanned: int = 0
    selected: int = 0
    replayed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    preview: dl.Stats = field(default_factory=dl.Stats)
    notes: list[str] = field(default_factory=list)  # one line per record skipped for a reason

    def as_json(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "selected": self.selected,
            "replayed": self.replayed,
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "notes": self.notes,
        }

    def skip(self, reason: str, note: str) -> None:
        self.skipped[reason] += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(note)
        elif len(self.notes) == MAX_NOTES:
            self.notes.append("... (more skipped records are counted, not listed)")


MAX_NOTES = 200
ORIGINAL_WAIT_S = 10.0


class Originals:
    """Reads a cut dead letter's original again from the source topic, by its coordinates."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, topic: str, partition: int, offset: int) -> tuple[Any, str]:
        """(the record, "") or (None, why it cannot be read)."""
        consumer = await self._open()
        tp = TopicPartition(topic, partition)
        try:
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        except KafkaError as exc:
            return None, f"{topic}-{partition} cannot be read ({type(exc).__name__})"
        if not first <= offset < end:
            return None, f"no longer retained ({topic}-{partition} holds {first}..{end - 1})"
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = asyncio.get_running_loop().time() + ORIGINAL_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in fetched.get(tp, []):
                if record.offset == offset:
                    return record, ""
                return None, "no longer retained (compacted away)"
        return None, f"not read within {ORIGINAL_WAIT_S:.0f}s"

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **connection_kwargs(self._config),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # An original too large for its dead-letter topic can be large indeed.
                max_partition_fetch_bytes=MAX_REQUEST_BYTES,
                fetch_max_bytes=MAX_REQUEST_BYTES,
            )
            await self._consumer.start()
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


Progress = Callable[[int, int], None]  # (records read, records to read)


async def _partitions(config: KafkaConfig, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**connection_kwargs(config))
    try:
        await admin.start()
        topics = set(await admin.list_topics())
        if topic not in topics:
            similar = ", ".join(sorted(t for t in topics if t.endswith(".dlq"))) or "none"
            raise FatalError(f"topic {topic!r} does not exist (dead-letter topics here: {similar})")
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise await startup_error(config, exc) from None
    finally:
        await admin.close()
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(described[0]["partitions"], key=lambda p: p["partition"])
    ]


async def _open(
    config: KafkaConfig, topic: str, group_id: str | None
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    tps = await _partitions(config, topic)
    consumer = AIOKafkaConsumer(
        **connection_kwargs(config),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise FatalError(
            f"cannot reach Kafka at {config.bootstrap_servers}: {type(exc).__name__}"
        ) from None
    return consumer, tps


async def _records(
    consumer: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    progress: Progress | None,
    total: int,
) -> Any:
    """Batches of records up to ``ends``, partition by partition position."""
    done = 0
    remaining = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=2000)
        for tp, records in batches.items():
            records = [r for r in records if r.offset < ends[tp]]
            if records:
                done += len(records)
                yield tp, records
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if progress is not None:
            progress(done, total)


async def stats(config: KafkaConfig, topic: str, samples: int = 3) -> dl.Stats:
    """Read ``topic`` to its current end, committing nothing, and aggregate it."""
    consumer, tps = await _open(config, topic, None)
    result = dl.Stats(samples)
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async for _tp, records in _records(consumer, ends, None, 0):
            for record in records:
                result.add(dl.parse(record), record.value)
    finally:
        await consumer.stop()
    return result


async def replay(
    config: KafkaConfig, options: ReplayOptions, progress: Progress | None = None
) -> ReplaySummary:
    consumer, tps = await _open(config, options.topic, options.group_id)
    summary = ReplaySummary()
    producer: AIOKafkaProducer | None = None
    originals = Originals(config)
    try:
        consumer.assign(tps)
        if options.from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        ends = await consumer.end_offsets(tps)
        starts = {tp: await consumer.position(tp) for tp in tps}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        if not options.dry_run:
            producer = AIOKafkaProducer(
                **connection_kwargs(config),
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_request_size=MAX_REQUEST_BYTES,
            )
            await producer.start()
        bucket = (
            TokenBucket(options.rate, max(1.0, options.rate / 10)) if options.rate > 0 else None
        )
        async for tp, records in _records(consumer, ends, progress, total):
            if options.limit is not None and summary.selected >= options.limit:
                break
            pending = []
            last = None
            for record in records:
                if options.limit is not None and summary.selected >= options.limit:
                    break
                last = record.offset
                summary.scanned += 1
                letter = dl.parse(record)
                if letter is None:
                    summary.skipped["without_forwarder_headers"] += 1
                    continue
                if not options.selection.matches(letter):
                    continue
                summary.selected += 1
                found = await _original(record, letter, options.topic, originals, summary)
                if found is None:
                    continue
                key, value, original = found
                if options.revalidate is not None and not _valid(value, options.revalidate):
                    summary.skipped["would_fail_validation"] += 1
                    continue
                summary.preview.add(letter, record.value)
                if producer is None:
                    continue
                if bucket is not None:
                    await _take(bucket)
                target = options.to or letter.original_topic
                headers = dl.replay_headers(record, letter, options.topic, original)
                pending.append(await producer.send(target, value=value, key=key, headers=headers))
            if producer is not None:
                results = await asyncio.gather(*pending, return_exceptions=True)
                failures = sum(1 for r in results if isinstance(r, BaseException))
                summary.replayed += len(results) - failures
                summary.failed += failures
                if failures:
                    break  # commit nothing past a record that was not re-produced
                if last is not None:
                    await consumer.commit({tp: OffsetAndMetadata(last + 1, "")})
    finally:
        if producer is not None:
            await producer.stop()
        await originals.close()
        await consumer.stop()
    return summary


async def _original(
    record: Any, letter: dl.DeadLetter, dlq: str, originals: Originals, summary: ReplaySummary
) -> tuple[bytes | None, bytes | None, Any] | None:
    """The key and value to replay a dead letter with, and the source record they were read
    from again (None when the dead letter holds them); None, counted and noted, to skip it."""
    where = f"{dlq}/{record.partition}/{record.offset}"
    value = dl.stored_value(record, letter)
    if value is not None or not letter.truncated:
        if value is None and record.value is not None:  # compressed, but not to its original
            summary.skip("damaged", f"skipped {where}: its compressed value is not the original")
            return None
        return record.key, value, None
    origin = origin_of(record)
    source = f"{origin.topic}/{origin.partition}/{origin.offset}"
    original, why = await originals.read(origin.topic, origin.partition, origin.offset)
    if original is None:
        summary.skip(
            "original_not_retained",
            f"skipped {where}: its value was cut to fit the dead-letter topic and its original "
            f"{source} is {why}",
        )
        return None
    if not dl.matches(original.value, letter):
        summary.skip(
            "original_changed",
            f"skipped {where}: its value was cut to fit the dead-letter topic and {source} now "
            "holds another value (its SHA-256 differs)",
        )
        return None
    return original.key, original.value, original


async def _take(bucket: TokenBucket) -> None:
    while True:
        wait = bucket.try_take(time.monotonic())
        if wait <= 0:
            return
        await asyncio.sleep(wait)


def _valid(value: bytes | None, registry: SchemaRegistry) -> bool:
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and registry.validate(event) is None


def dlq_topics(sources: Sequence[str]) -> list[str]:
    from forwarder.core.topics import dlq_topic

    return [dlq_topic(s) for s in sources]
