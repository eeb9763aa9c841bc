"""The producer for retry-tier and dead-letter topics: idempotent, ``acks=all``.

``publish`` makes one attempt and returns its outcome as a value: acknowledged, or the kind of
error and whether it is retriable. The delivery retries (the source offset of a record is
committed only after its copy is safe, so a broker outage here stalls commits instead of losing
events) and makes every failure visible.

aiokafka's idempotent producer does not survive every outage: a batch that waits longer than
``request_timeout_ms`` while its partition has no leader expires but keeps its sequence number,
so once a leader is back the broker refuses the next batch as ``OutOfOrderSequenceNumber``, the
producer's sender task ends, and every later send fails the same way (the Java client bumps the
producer epoch instead, KIP-360). The publisher then replaces the producer: a new one gets a new
producer id and starts its sequences afresh, and the failed records are written again by the
caller's retry, so nothing is lost and the records keep their headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
)

from forwarder.adapters.kafka_common import connection_kwargs, open_admin
from forwarder.config import MAX_BYTES_PER_EVENT, KafkaConfig
from forwarder.errors import FatalError
from forwarder.ports import ACKNOWLEDGED, SIZE_ERRORS, PublishResult

# Dead-lettered values are the original bytes, which can exceed the default 1 MB request; a
# larger one is written compressed or cut (forwarder.core.fitting).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
TOPIC_CONFIG = {"max.message.bytes": str(MAX_REQUEST_BYTES)}
CHECK_TIMEOUT_S = 5.0
# The largest record the forwarder must be able to park or dead-letter: the largest event it
# accepts (the endpoint's 1 MB per event) plus room for the key, the forwarder's headers (the
# detail alone is up to 1 KB) and the record batch overhead. Kafka's default max.message.bytes
# (1,048,588) holds it.
RECORD_HEADROOM_BYTES = 16 * 1024
MIN_MESSAGE_BYTES = MAX_BYTES_PER_EVENT + RECORD_HEADROOM_BYTES
# Errors after which aiokafka's sender task has ended and the producer can send nothing more.
PRODUCER_ENDING_ERRORS = (OutOfOrderSequenceNumber, ProducerFenced)
# Errors about one record's content, besides its size: other records can still be written.
RECORD_ERRORS = (CorruptRecordException, InvalidTimestampError)
STOP_TIMEOUT_S = 10.0
LEARN_TIMEOUT_S = 10.0


class KafkaPublisher:
    def __init__(self, config: KafkaConfig, request_timeout_ms: int = 40_000) -> None:
        self._config = config
        self._request_timeout_ms = request_timeout_ms
        self._producer = self._new_producer()
        self._replacing = asyncio.Lock()
        self._log = structlog.get_logger("forwarder.kafka")
        # max.message.bytes of the retry and dead-letter topics: filled by ensure_topics at
        # start-up, read again after a size error.
        self.topic_limits: dict[str, int] = {}

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **connection_kwargs(self._config),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=self._request_timeout_ms,
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise FatalError(
                f"cannot start the Kafka producer: {type(exc).__name__}: {exc}"
            ) from None

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> PublishResult:
        """One produce, waited for until the broker acknowledged it or refused it."""
        producer = self._producer
        try:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            name = type(exc).__name__
            if name in SIZE_ERRORS:
                await self._learn_limit(topic)
                return PublishResult(False, name, False, record_level=True)
            if isinstance(exc, RECORD_ERRORS):
                return PublishResult(False, name, bool(exc.retriable), record_level=True)
            if isinstance(exc, PRODUCER_ENDING_ERRORS) or _sender_ended(producer):
                await self._replace(producer, exc)
                return PublishResult(False, name, True)
            return PublishResult(False, name, bool(exc.retriable))
        return ACKNOWLEDGED

    def record_limit(self, topic: str) -> int:
        return min(self.topic_limits.get(topic, MAX_REQUEST_BYTES), MAX_REQUEST_BYTES)

    async def _learn_limit(self, topic: str) -> None:
        """Read ``topic``'s max.message.bytes again: it may have changed since start-up."""
        try:
            limits = await asyncio.wait_for(topic_limits(self._config, [topic]), LEARN_TIMEOUT_S)
        except (KafkaError, FatalError, TimeoutError) as exc:
            self._log.warning(
                "topic_limit_unreadable",
                topic=topic,
                error=type(exc).__name__,
                note="the writer assumes a lower limit after each refusal",
            )
            return
        self.topic_limits.update(limits)

    async def _replace(self, broken: AIOKafkaProducer, cause: KafkaError) -> None:
        """Swap in a new producer for one that can send no more, once for all the failed sends.

        If the new one cannot start (the cluster is still away), the broken one stays and the
        next failed publish tries again.
        """
        async with self._replacing:
            if self._producer is not broken:
                return
            try:
                await asyncio.wait_for(broken.stop(), STOP_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:
                self._log.warning("producer_stop_failed", error=type(exc).__name__)
            fresh = self._new_producer()
            try:
                await fresh.start()
            except KafkaError as exc:
                await fresh.stop()
                self._log.warning(
                    "producer_replace_failed",
                    cause=type(cause).__name__,
                    error=type(exc).__name__,
                    note="retried on the next failed write",
                )
                return
            self._producer = fresh
            self._log.warning(
                "producer_replaced",
                cause=type(cause).__name__,
                note="the producer could send no more; the failed writes are retried",
            )

    async def check(self) -> str:
        """Ask a broker for metadata through the producer's own client: ``""`` if one answered.

        An idle producer holds no request in flight, so its connections say little; a metadata
        round trip on the same client (bootstrap and known brokers, as a send would use) does.
        """
        try:
            updated = await asyncio.wait_for(
                self._producer.client.force_metadata_update(), CHECK_TIMEOUT_S
            )
        except TimeoutError:
            return f"no broker answered the producer within {CHECK_TIMEOUT_S:.0f}s"
        except KafkaError as exc:
            return f"producer metadata request failed: {type(exc).__name__}"
        return "" if updated else "the producer cannot reach any broker"

    async def stop(self) -> None:
        await self._producer.stop()


async def ensure_topics(
    config: KafkaConfig,
    sources: Sequence[str],
    suffixes: Sequence[str],
    limits: dict[str, int] | None = None,
) -> list[str]:
    """Create ``<source><suffix>`` topics that are missing, and check the ones that exist.

    New topics get the source's partition count and room for 8 MB records. An existing one
    whose ``max.message.bytes`` is below ``MIN_MESSAGE_BYTES`` could never take some events,
    so start-up stops naming it. Each topic's ``max.message.bytes`` goes into ``limits`` (the
    publisher's, which fits every record to it). Returns the names created. Raises
    ``FatalError`` (one line) when the broker forbids or fails describing or creating them.
    """
    async with open_admin(config) as admin:
        try:
            created = await _create_missing(admin, sources, suffixes)
            derived = [f"{s}{suffix}" for s in sources for suffix in suffixes]
            found = await _check_message_bytes(admin, [t for t in derived if t not in created])
            if limits is not None:
                limits.update(dict.fromkeys(created, MAX_REQUEST_BYTES))
                limits.update(found)
        except KafkaError as exc:
            raise FatalError(
                f"cannot check or create the retry and dead-letter topics of "
                f"{', '.join(sources)} at {config.bootstrap_servers}: {_one_line(exc)}; allow "
                "the forwarder to DESCRIBE, DESCRIBE_CONFIGS and CREATE these topics, or create "
                "them by hand"
            ) from None
        return created


async def _create_missing(
    admin: AIOKafkaAdminClient, sources: Sequence[str], suffixes: Sequence[str]
) -> list[str]:
    existing = set(await admin.list_topics())
    missing = [s for s in sources if s not in existing]
    if missing:
        raise FatalError(f"source topic(s) {', '.join(missing)} do not exist; create them first")
    described = await admin.describe_topics(list(sources))
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    replication = _replication(len(await _brokers(admin)))
    new = [
        NewTopic(
            f"{s}{suffix}",
            partitions[s],
            replication,
            topic_configs=TOPIC_CONFIG,
        )
        for s in sources
        for suffix in suffixes
        if f"{s}{suffix}" not in existing
    ]
    if not new:
        return []
    try:
        response = await admin.create_topics(new)
    except TopicAlreadyExistsError:
        return []
    except KafkaError as exc:
        raise FatalError(
            f"cannot create topics {', '.join(t.name for t in new)}: {type(exc).__name__}; "
            "create them by hand or grant CREATE on the cluster"
        ) from None
    for name, code, *_ in getattr(response, "topic_errors", []):
        if code not in (0, 36):  # 36: already exists (another replica won the race)
            raise FatalError(
                f"cannot create topic {name}: Kafka error code {code}; create it by hand or grant CREATE"
            )
    return [t.name for t in new]


async def topic_limits(config: KafkaConfig, topics: Sequence[str]) -> dict[str, int]:
    """The ``max.message.bytes`` of ``topics`` that could be read."""
    async with open_admin(config) as admin:
        return await _message_bytes(admin, topics)


async def _message_bytes(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    """``max.message.bytes`` by topic; one that cannot be read is logged and left out."""
    if not topics:
        return {}
    log = structlog.get_logger("forwarder.kafka")
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None}) for t in topics]
    )
    found: dict[str, int] = {}
    for response in responses:
        for code, message, _kind, name, entries, *_ in response.resources:
            value = next((e[1] for e in entries if e[0] == "max.message.bytes"), None)
            if code or value is None:
                # Not allowed to read it (no DESCRIBE_CONFIGS): say so, the writes will tell.
                log.warning(
                    "topic_config_unreadable",
                    topic=name,
                    error_code=code,
                    error=message,
                    note=f"could not check that max.message.bytes >= {MIN_MESSAGE_BYTES}",
                )
                continue
            found[name] = int(value)
    return found


async def _check_message_bytes(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    """Refuse topics whose ``max.message.bytes`` cannot hold the largest event accepted;
    return the limits read."""
    found = await _message_bytes(admin, topics)
    too_small = [f"{name} ({value})" for name, value in found.items() if value < MIN_MESSAGE_BYTES]
    if too_small:
        raise FatalError(
            f"topic max.message.bytes too small: {', '.join(sorted(too_small))}; the forwarder "
            f"accepts events of up to {MAX_BYTES_PER_EVENT} bytes and needs "
            f"{MIN_MESSAGE_BYTES} per record on its retry and dead-letter topics (a larger dead "
            "letter is written compressed or cut to fit; 8388608 keeps events of up to 8 MB "
            "whole): raise it with kafka-configs.sh --alter --entity-type topics "
            "--entity-name TOPIC --add-config max.message.bytes=8388608"
        )
    return found


async def ensure_named_topics(config: KafkaConfig, names: Sequence[str], like: str) -> list[str]:
    """Create the missing ``names`` (personalization output topics) with ``like``'s partitions."""
    async with open_admin(config) as admin:
        try:
            missing = [n for n in names if n not in set(await admin.list_topics())]
            if not missing:
                return []
            described = await admin.describe_topics([like])
            partitions = max(1, len(described[0]["partitions"])) if described else 1
            replication = _replication(len(await _brokers(admin)))
        except KafkaError as exc:
            raise FatalError(
                f"cannot check the topics {', '.join(names)} at {config.bootstrap_servers}: "
                f"{_one_line(exc)}; allow the forwarder to DESCRIBE them, or create them by hand"
            ) from None
        try:
            await admin.create_topics([NewTopic(n, partitions, replication) for n in missing])
        except TopicAlreadyExistsError:
            return []
        except KafkaError as exc:
            raise FatalError(
                f"cannot create topics {', '.join(missing)}: {type(exc).__name__}; "
                "create them by hand or grant CREATE on the cluster"
            ) from None
        return missing


def _sender_ended(producer: AIOKafkaProducer) -> bool:
    """Whether aiokafka's background sender has ended, after which every send fails.

    Reaches into aiokafka's private state, defensively: a future version without it reads as
    "still running", and the known ending errors are caught by type as well.
    """
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return isinstance(task, asyncio.Task) and task.done()


def _one_line(exc: KafkaError) -> str:
    """A Kafka error as one short line: its type, and its message when it says more."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if not text or text == name:
        return name
    text = text if name in text else f"{name}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


async def _brokers(admin: AIOKafkaAdminClient) -> list[object]:
    cluster = await admin.describe_cluster()
    brokers: list[object] = cluster.get("brokers", [])
    return brokers


def _replication(brokers: int) -> int:
    return max(1, min(3, brokers))
