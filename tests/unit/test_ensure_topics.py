"""Start-up checks of the retry and dead-letter topics, against an admin client that misbehaves.

A ``KafkaError`` while describing or creating the topics stops start-up with one line, not a
traceback; a topic whose ``max.message.bytes`` is below the largest event the forwarder accepts
stops it too, naming the topic and the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog.testing
from aiokafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from forwarder.adapters import kafka_publisher
from forwarder.adapters.kafka_publisher import MIN_MESSAGE_BYTES, ensure_topics
from forwarder.config import KafkaConfig
from forwarder.errors import FatalError

SUFFIXES = (".retry.1", ".dlq")


class FakeAdmin:
    def __init__(self, existing: dict[str, int], fail: dict[str, Exception] | None = None) -> None:
        self.existing = dict(existing)  # topic -> max.message.bytes
        self.fail = fail or {}
        self.created: list[str] = []
        self.config_errors: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    async def list_topics(self) -> list[str]:
        self._maybe_fail("list_topics")
        return list(self.existing)

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self._maybe_fail("describe_topics")
        return [{"topic": t, "error_code": 0, "partitions": [{}, {}, {}]} for t in topics]

    async def describe_cluster(self) -> dict[str, Any]:
        self._maybe_fail("describe_cluster")
        return {"brokers": [{}]}

    async def create_topics(self, new: list[Any]) -> Any:
        self._maybe_fail("create_topics")
        for topic in new:
            self.created.append(topic.name)
            self.existing[topic.name] = int(topic.topic_configs["max.message.bytes"])
        return None

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        self._maybe_fail("describe_configs")
        out = []
        for resource in resources:
            name = resource.name
            code = self.config_errors.get(name, 0)
            entries = [] if code else [("max.message.bytes", str(self.existing[name]), False)]
            out.append(_Response([(code, None, 2, name, entries)]))
        return out


class _Response:
    def __init__(self, resources: list[Any]) -> None:
        self.resources = resources


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin({"clicks": 1_048_588})

    @contextlib.asynccontextmanager
    async def open_admin(_config: KafkaConfig) -> AsyncIterator[FakeAdmin]:
        yield fake

    monkeypatch.setattr(kafka_publisher, "open_admin", open_admin)
    return fake


async def _ensure() -> list[str]:
    return await ensure_topics(KafkaConfig(), ["clicks"], SUFFIXES)


@pytest.mark.parametrize(
    "step", ["list_topics", "describe_topics", "describe_cluster", "describe_configs"]
)
@pytest.mark.parametrize(
    "error", [KafkaTimeoutError(), TopicAuthorizationFailedError("topics clicks")]
)
async def test_a_kafka_error_while_preparing_topics_is_one_clear_line(
    admin: FakeAdmin, step: str, error: Exception
) -> None:
    admin.existing["clicks.retry.1"] = admin.existing["clicks.dlq"] = 8_388_608
    admin.fail[step] = error
    with pytest.raises(FatalError) as info:
        await _ensure()
    message = str(info.value)
    assert "\n" not in message
    assert type(error).__name__ in message
    assert "clicks" in message and "kafka.bootstrap_servers" not in message


async def test_created_topics_get_room_for_the_largest_event(admin: FakeAdmin) -> None:
    assert sorted(await _ensure()) == ["clicks.dlq", "clicks.retry.1"]
    assert all(admin.existing[t] >= MIN_MESSAGE_BYTES for t in admin.created)


async def test_an_existing_topic_too_small_for_the_largest_event_stops_start_up(
    admin: FakeAdmin,
) -> None:
    admin.existing["clicks.retry.1"] = 8_388_608
    admin.existing["clicks.dlq"] = 500_000
    with pytest.raises(FatalError) as info:
        await _ensure()
    message = str(info.value)
    assert "\n" not in message
    assert "clicks.dlq" in message and "500000" in message and "max.message.bytes" in message
    assert "clicks.retry.1" not in message


async def test_the_broker_default_is_room_enough(admin: FakeAdmin) -> None:
    # Kafka's default max.message.bytes (1 MiB + 12) holds a 1,000,000-byte event and headers.
    admin.existing["clicks.retry.1"] = admin.existing["clicks.dlq"] = 1_048_588
    assert await _ensure() == []


async def test_unreadable_topic_configs_are_logged_not_fatal(admin: FakeAdmin) -> None:
    admin.existing["clicks.retry.1"] = admin.existing["clicks.dlq"] = 500_000
    admin.config_errors = {"clicks.retry.1": 29, "clicks.dlq": 29}
    with structlog.testing.capture_logs() as logs:
        assert await _ensure() == []
    assert [e["event"] for e in logs] == ["topic_config_unreadable"] * 2


async def test_the_limits_of_the_topics_go_to_the_publisher(admin: FakeAdmin) -> None:
    admin.existing["clicks.dlq"] = 1_048_588
    publisher = kafka_publisher.KafkaPublisher(KafkaConfig())
    try:
        created = await ensure_topics(KafkaConfig(), ["clicks"], SUFFIXES, publisher.topic_limits)
        assert created == ["clicks.retry.1"]
        assert publisher.record_limit("clicks.dlq") == 1_048_588
        assert publisher.record_limit("clicks.retry.1") == kafka_publisher.MAX_REQUEST_BYTES
        # A topic changed later is read again after a size error.
        admin.existing["clicks.dlq"] = 600_000
        await publisher._learn_limit("clicks.dlq")
        assert publisher.record_limit("clicks.dlq") == 600_000
    finally:
        await publisher.stop()
