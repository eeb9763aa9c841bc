"""Rebalances and stops against a slow endpoint and a Kafka that does not answer, in virtual time.

Issue 12 items 3 and 4: the drain of revoked partitions must fit inside the group's rebalance
timeout, and past its budget their queued events must not be sent by the old owner; the main
loop must close lingering batches and notice a stop whatever the consumer's fetch and commit do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from aiokafka import TopicPartition

from forwarder.config import REVOKE_COMMIT_MS
from tests.harness import TOPIC, Harness

REVOKED = {TopicPartition(TOPIC, p) for p in range(3)}


@pytest.fixture
def slow() -> Iterator[Harness]:
    # The drain cannot finish: each request takes 100 s; shutdown_timeout_s, which used to
    # bound the revoke drain, is far above the rebalance timeout.
    h = Harness(seed=3, ops__shutdown_timeout_s=60)
    h.endpoint.latency_s = 100.0
    yield h
    h.stop()


def test_the_revoke_drain_fits_in_the_rebalance_timeout_and_queued_events_are_dropped(
    slow: Harness,
) -> None:
    kafka = slow.config.kafka
    assert kafka.revoke_drain_ms + REVOKE_COMMIT_MS <= kafka.rebalance_timeout_ms
    slow.start()
    slow.produce(1000)  # 50 batches: 8 in flight for 100 s each, 42 queued
    slow.run_until(lambda: len(slow.endpoint.sent) == 8, 10, "8 requests in flight")
    ids = {event_id for event_id in slow.produced.values() if event_id}
    before = len(slow.source.revocations)  # the first assignment revoked nothing
    slow.source.rebalance(REVOKED, give_away=True)
    with structlog.testing.capture_logs() as logs:
        slow.run_until(
            lambda: len(slow.source.revocations) > before, 120, "the revoke callback returned"
        )
    started, ended = slow.source.revocations[-1]
    assert ended - started <= kafka.rebalance_timeout_ms / 1000, "expelled from the group"
    assert ended - started >= kafka.revoke_drain_ms / 1000 - 0.1, "the budget was used"
    events = [e for e in logs if e["event"] == "revoked_batches_dropped"]
    assert events and events[0]["events"] == 1000 - 8 * 20, logs
    # The 8 requests in flight end at 100 s; nothing of the revoked partitions goes out after.
    slow.run_for(300)
    late = [batch for at, batch in slow.endpoint.sent if at >= ended and set(batch) & ids]
    assert late == [], f"the old owner sent {len(late)} batches of partitions it gave away"


def test_a_failed_commit_on_revoke_is_logged_and_counted(slow: Harness) -> None:
    slow.endpoint.latency_s = 0.005
    slow.start()
    slow.produce(30)
    slow.run_until(lambda: len(slow.delivered()) == 30, 10, "delivered")
    slow.source.fail_commits = True
    before = len(slow.source.revocations)
    slow.source.rebalance(REVOKED, give_away=True)
    with structlog.testing.capture_logs() as logs:
        slow.run_until(
            lambda: len(slow.source.revocations) > before, 60, "the revoke callback returned"
        )
    names = [e["event"] for e in logs]
    assert "revoke_commit_failed" in names and "kafka_error" in names, names
    failed = slow.pipeline.metrics.kafka_errors.labels("commit", "CommitFailedError")
    assert failed._value.get() >= 1


def test_linger_and_stop_are_handled_while_fetch_and_commit_never_return() -> None:
    h = Harness(seed=4, ops__shutdown_timeout_s=10)
    try:
        h.source.stuck = True  # fetches with nothing to return and commits hang for good
        h.produce(5)  # fewer than a batch: only the linger deadline (50 ms) sends them
        h.start()  # the first fetch takes them, the next one hangs
        took = h.run_until(lambda: len(h.delivered()) == 5, 5, "the lingering batch sent", 0.05)
        assert took <= 1.0, took
        assert h.task is not None
        stop_asked = h.loop.time()
        h.pipeline.stop()
        h.loop.run_until_complete(_wait(h, 30))
        assert h.loop.time() - stop_asked <= h.config.ops.shutdown_timeout_s + 0.5
        assert h.broker.committed == {}, "nothing could be committed: Kafka never answered"
    finally:
        h.source.unstick()
        h.stop()


async def _wait(h: Harness, timeout: float) -> None:
    import asyncio

    assert h.task is not None
    await asyncio.wait_for(asyncio.shield(h.task), timeout)


def _committed_to_end(h: Harness, partitions: range) -> bool:
    return all(
        h.broker.committed.get(TopicPartition(TOPIC, p), 0) == len(h.broker.log(TOPIC, p))
        for p in partitions
    )


def test_records_fetched_just_before_their_partition_is_revoked_are_dropped() -> None:
    """Issue 27 item 2: ``getmany`` returns records, the revoke runs straight through (nothing
    pending) and forgets the partition, then the loop takes the records. Tracked, they made
    every later commit name a partition this member no longer owns, which aiokafka refuses
    (IllegalStateError) for all partitions, until a restart."""
    h = Harness(seed=5)
    try:
        h.start()
        h.produce(60)
        given = TopicPartition(TOPIC, 0)
        h.source.rebalance({given}, give_away=True, late=True)
        h.run_until(lambda: _committed_to_end(h, range(1, 3)), 30, "partitions 1, 2 committed")
        assert given not in h.pipeline._tracker.partitions
        assert h.broker.committed.get(given, 0) == 0, "committed by a member that gave it away"
        refused = h.pipeline.metrics.registry.get_sample_value(
            "forwarder_kafka_errors_total", {"operation": "commit", "error": "IllegalStateError"}
        )
        assert not refused
        dropped = h.pipeline.metrics.registry.get_sample_value(
            "forwarder_records_dropped_unassigned_total", {"topic": TOPIC}
        )
        assert dropped == 20
        # The partition comes back: read again from its last commit, nothing is lost.
        h.source.take_back()
        h.run_until(h.all_finished, 60, "every record delivered and committed")
    finally:
        h.stop()


async def test_a_commit_names_only_assigned_partitions() -> None:
    from forwarder.core.offsets import OffsetTracker
    from forwarder.engine.committer import Committer
    from forwarder.telemetry.kafka_errors import KafkaErrors
    from forwarder.telemetry.metrics import Metrics
    from tests.fakes import FakeBroker, FakeSource

    broker = FakeBroker(partitions=2)
    source = FakeSource(broker)
    tracker = OffsetTracker(100)
    metrics = Metrics()
    committer = Committer(tracker, source, metrics, KafkaErrors(metrics), lambda: 0.0)
    owned, lost = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    source._assigned = {owned}  # the other one went to another member without a revoke here
    for tp in (owned, lost):
        tracker.add(tp, 0)
        tracker.done(tp, 0)
    assert await committer.commit()
    assert broker.committed == {owned: 1}
    skipped = metrics.registry.get_sample_value(
        "forwarder_kafka_errors_total", {"operation": "commit", "error": "NotAssigned"}
    )
    assert skipped == 1
