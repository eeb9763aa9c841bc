"""Create named topics that are missing (the personalization output topics)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from forwarder.adapters.kafka_common import connection_kwargs
from forwarder.config import KafkaConfig
from forwarder.errors import FatalError


async def ensure_named_topics(config: KafkaConfig, names: Sequence[str], like: str) -> list[str]:
    """Create the missing ``names`` with the partition count of topic ``like``; the created."""
    admin = AIOKafkaAdminClient(**connection_kwargs(config))
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise FatalError(f"cannot reach Kafka at start-up: {type(exc).__name__}: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return []
        described = await admin.describe_topics([like])
        partitions = max(1, len(described[0]["partitions"])) if described else 1
        brokers = (await admin.describe_cluster()).get("brokers", [])
        replication = max(1, min(3, len(brokers)))
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
    finally:
        await admin.close()
