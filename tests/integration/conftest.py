"""Fixtures of the integration tests: a real Kafka broker, the destination sandbox and, for the
tests that ask for it, a real schema registry (Apicurio, started once per session)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from forwarder.localkafka import KafkaCluster, LocalRegistry, create_topic
from forwarder.sandbox import RunningSandbox, SandboxConfig, start_sandbox


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(nodes=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[LocalRegistry]:
    """A schema registry with the Confluent-compatible API, in memory, for the whole session."""
    registry = LocalRegistry()
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def kafka(kafka_cluster: KafkaCluster) -> str:
    """Bootstrap servers of the session's single-node broker."""
    return kafka_cluster.bootstrap_servers


@pytest.fixture
async def topic(kafka: str) -> str:
    """A fresh topic with 3 partitions, uniquely named for the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka, name, 3)
    return name


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    """The destination sandbox on a free loopback port, no rate limit, no faults."""
    running = await start_sandbox(SandboxConfig(port=0, rate=0, seed=1))
    try:
        yield running
    finally:
        await running.stop()
