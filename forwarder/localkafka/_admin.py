"""Admin helpers for the local cluster: create a topic, wait for partition leaders."""

from __future__ import annotations

import asyncio
import contextlib
import time


async def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    replication: int = 1,
    wait_s: float = 30.0,
    configs: dict[str, str] | None = None,
) -> None:
    """Create a topic (with topic ``configs`` such as ``min.insync.replicas``) and wait until
    every partition has a leader."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(name, partitions, replication, topic_configs=configs or {})]
            )
        deadline = time.monotonic() + wait_s
        while True:
            described = await admin.describe_topics([name])
            parts = described[0].get("partitions", []) if described else []
            if (
                described
                and described[0].get("error_code", 0) == 0
                and len(parts) == partitions
                and all(p.get("leader", -1) >= 0 for p in parts)
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leaders after {wait_s}s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def wait_for_leaders(
    bootstrap: str, topic: str, avoid: set[int], wait_s: float = 30.0
) -> None:
    """Wait until every partition of ``topic`` has a live leader outside ``avoid`` (node ids)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + wait_s
        while True:
            leaders: list[int] = []
            try:
                described = await admin.describe_topics([topic])
                leaders = [p.get("leader", -1) for p in described[0].get("partitions", [])]
            except KafkaError:
                # The admin client's metadata may still name the dead node; ask again.
                pass
            if leaders and all(leader >= 0 and leader not in avoid for leader in leaders):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} leaders still {leaders} after {wait_s}s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
