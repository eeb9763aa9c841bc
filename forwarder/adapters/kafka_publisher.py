"""The producer for retry-tier and dead-letter topics: idempotent, ``acks=all``.

``publish`` makes one attempt and returns its outcome as a value: acknowledged, or the kind of
error and whether it is retriable. The delivery retries (the source offset of a record is
committed only after its copy is safe, so a broker outage here stalls commits instead of losing
events) and makes every failure visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from forwarder.adapters.kafka_common import connection_kwargs, open_admin
from forwarder.config import KafkaConfig
from forwarder.errors import FatalError
from forwarder.ports import ACKNOWLEDGED, PublishResult

# Dead-lettered values are the original bytes, which can exceed the default 1 MB request.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
TOPIC_CONFIG = {"max.message.bytes": str(MAX_REQUEST_BYTES)}
CHECK_TIMEOUT_S = 5.0


class KafkaPublisher:
    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._producer = AIOKafkaProducer(
            **connection_kwargs(config),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES,
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
        try:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            return PublishResult(False, type(exc).__name__, bool(exc.retriable))
        return ACKNOWLEDGED

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
    config: KafkaConfig, sources: Sequence[str], suffixes: Sequence[str]
) -> list[str]:
    """Create ``<source><suffix>`` topics that are missing, with the source's partition count.

    Returns the names created. Raises ``FatalError`` with the broker's reason when it forbids
    creating them (an operator then creates them by hand).
    """
    async with open_admin(config) as admin:
        existing = set(await admin.list_topics())
        missing = [s for s in sources if s not in existing]
        if missing:
            raise FatalError(
                f"source topic(s) {', '.join(missing)} do not exist; create them first"
            )
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


async def ensure_named_topics(config: KafkaConfig, names: Sequence[str], like: str) -> list[str]:
    """Create the missing ``names`` (personalization output topics) with ``like``'s partitions."""
    async with open_admin(config) as admin:
        missing = [n for n in names if n not in set(await admin.list_topics())]
        if not missing:
            return []
        described = await admin.describe_topics([like])
        partitions = max(1, len(described[0]["partitions"])) if described else 1
        replication = _replication(len(await _brokers(admin)))
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


async def _brokers(admin: AIOKafkaAdminClient) -> list[object]:
    cluster = await admin.describe_cluster()
    brokers: list[object] = cluster.get("brokers", [])
    return brokers


def _replication(brokers: int) -> int:
    return max(1, min(3, brokers))
