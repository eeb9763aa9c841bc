"""What /readyz says, from the endpoint's health and the topics that refuse writes."""

from __future__ import annotations

from forwarder.core.health import EndpointHealth, HealthSettings, Outcome
from forwarder.engine.readiness import endpoint_blocked, failing_note, unwritable_topics
from forwarder.engine.topic_writer import PublishTrouble


def _health() -> EndpointHealth:
    return EndpointHealth(HealthSettings(down_after_failures=3, down_after_s=5.0), 8)


def test_a_healthy_endpoint_blocks_nothing_and_notes_nothing() -> None:
    health = _health()
    health.observe(Outcome.WORKING, 1.0, destination="db.a")
    assert endpoint_blocked(health, 2.0) is None
    assert failing_note(health, 2.0) == ""


def test_an_endpoint_down_says_since_when_and_why_and_that_nothing_is_dead_lettered() -> None:
    health = _health()
    for i in range(6):
        health.observe(
            Outcome.FAILED, float(i * 2), destination="db.a", batch=f"b{i}", cause="503 (2001)"
        )
    blocked = endpoint_blocked(health, 20.0)
    assert blocked is not None
    assert blocked.startswith("endpoint down for ")
    assert "503 (2001)" in blocked
    assert "nothing is dead-lettered" in blocked


def test_only_refused_or_long_failing_topics_make_the_forwarder_unready() -> None:
    trouble = {
        "clickstream.retry.1": PublishTrouble("KafkaTimeoutError", since=95.0, retriable=True),
        "clickstream.dlq": PublishTrouble("TopicAuthorizationFailedError", 99.0, False),
        "other.retry.1": PublishTrouble("KafkaTimeoutError", since=10.0, retriable=True),
    }
    assert unwritable_topics(trouble, 100.0, unready_after_s=30.0) == [
        "clickstream.dlq (TopicAuthorizationFailedError, for 1s)",
        "other.retry.1 (KafkaTimeoutError, for 90s)",
    ]


def test_a_degraded_table_is_named_in_the_note_and_leaves_the_endpoint_unblocked() -> None:
    health = _health()
    for second in range(60):
        health.observe(Outcome.FAILED, float(second), destination="db.bad", batch=str(second % 4))
        health.observe(Outcome.WORKING, second + 0.5, destination="db.good")
    assert endpoint_blocked(health, 60.0) is None
    note = failing_note(health, 60.0)
    assert note.startswith("; degraded destinations: db.bad for ")
    assert "db.good" not in note


def test_one_batch_failing_alone_is_noted_as_not_an_outage_so_far() -> None:
    health = _health()
    for second in range(20):
        health.observe(Outcome.FAILED, float(second), destination="db.a", batch="poison")
    assert endpoint_blocked(health, 20.0) is None
    assert failing_note(health, 20.0) == (
        "; requests failing for 20s (not an outage so far: one batch, or too short)"
    )
