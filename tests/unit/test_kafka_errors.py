"""Kafka client errors are counted and logged, never swallowed; /readyz checks the producer;
the consumer gets the rebalance timeout (issue 12 items 3 and 9)."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError

from forwarder.adapters.kafka_source import KafkaSource
from forwarder.ports import PublishResult
from forwarder.telemetry.kafka_errors import KafkaErrors
from forwarder.telemetry.metrics import Metrics
from tests.harness import Harness, harness_config


def _count(metrics: Metrics, operation: str, error: str) -> float:
    value: float = metrics.kafka_errors.labels(operation, error)._value.get()
    return value


def test_errors_are_all_counted_but_logged_once_per_interval_per_kind() -> None:
    now = [0.0]
    metrics = Metrics()
    errors = KafkaErrors(metrics, clock=lambda: now[0], interval_s=30)
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            errors.report("fetch", "KafkaConnectionError")
            now[0] += 0.1
        errors.report("commit", "CommitFailedError", partitions=["t-0"])
        now[0] = 31.0
        errors.report("fetch", "KafkaConnectionError")
    assert _count(metrics, "fetch", "KafkaConnectionError") == 101
    assert _count(metrics, "commit", "CommitFailedError") == 1
    lines = [
        (e["operation"], e["unlogged_since_last"]) for e in logs if e["event"] == "kafka_error"
    ]
    assert lines == [("fetch", 0), ("commit", 0), ("fetch", 99)]
    assert all(e["log_level"] == "warning" for e in logs)


class _FailingConsumer:
    """Stands in for AIOKafkaConsumer: every call fails as a broker outage does."""

    async def getmany(self, **_: Any) -> Any:
        raise KafkaConnectionError("connection refused")

    async def end_offsets(self, _partitions: Any) -> Any:
        raise RequestTimedOutError()

    async def commit(self, _offsets: Any) -> Any:
        raise RequestTimedOutError()


async def test_the_consumer_reports_failed_fetches_and_end_offsets_and_names_a_failed_commit() -> (
    None
):
    from aiokafka import TopicPartition

    reported: list[tuple[str, str]] = []
    source = KafkaSource(harness_config().kafka, report=lambda o, e: reported.append((o, e)))
    real, source._consumer = source._consumer, _FailingConsumer()
    try:
        assert await source.fetch(0.01, 10) == {}
        assert await source.end_offsets([TopicPartition("t", 0)]) == {}
        result = await source.commit({TopicPartition("t", 0): 5})
    finally:
        source._consumer = real
        await real.stop()
    assert reported == [("fetch", "KafkaConnectionError"), ("end_offsets", "RequestTimedOutError")]
    assert not result.ok and result.error == "RequestTimedOutError"


async def test_the_consumer_joins_with_the_configured_rebalance_timeout() -> None:
    config = harness_config(kafka__rebalance_timeout_ms=45000, kafka__revoke_drain_ms=40000)
    source = KafkaSource(config.kafka)
    try:
        consumer: Any = source._consumer
        assert consumer._rebalance_timeout_ms == 45000
        assert consumer._session_timeout_ms == 10000
    finally:
        await source.stop()


def test_readiness_says_when_the_producer_cannot_reach_kafka_and_recovers() -> None:
    h = Harness(seed=8)
    try:
        h.start()
        h.run_until(lambda: h.readiness()[0], 10, "ready")
        h.publisher.unreachable = "the producer cannot reach any broker"
        h.run_until(lambda: not h.readiness()[0], 15, "not ready")
        assert h.readiness() == (False, "producer: the producer cannot reach any broker")
        h.publisher.unreachable = ""
        h.run_until(lambda: h.readiness()[0], 15, "ready again")
    finally:
        h.stop()


def test_readiness_learns_of_a_failing_producer_when_a_write_fails_not_on_the_poll() -> None:
    """Issue 27 item 6: /readyz looked at the producer every 10 s only."""
    h = Harness(seed=9)
    try:
        h.start()
        h.run_until(lambda: h.readiness()[0], 10, "ready")
        h.run_for(1.0)  # just after a periodic check: the next is 9 s away
        h.publisher.unreachable = "the producer cannot reach any broker"
        h.publisher.failure = PublishResult(False, "KafkaConnectionError", True)
        h.produce(3, malformed_every=1)  # dead letters to write, which fail
        took = h.run_until(lambda: not h.readiness()[0], 10, "not ready", step=0.05)
        assert took <= 1.0, took
        assert h.readiness() == (False, "producer: the producer cannot reach any broker")
        h.publisher.unreachable = ""
        h.publisher.failure = None
        took = h.run_until(lambda: h.readiness()[0], 10, "ready again", step=0.05)
        assert took <= 1.0, took
    finally:
        h.stop()
