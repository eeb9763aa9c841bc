"""Memory bounded in bytes (issue 12 item 7) and stranded retry tiers (item 8), in virtual time."""

from __future__ import annotations

import orjson

from forwarder.core.headers import origin_of, retry_headers
from forwarder.core.offsets import record_bytes
from forwarder.core.topics import TopicMap, retry_topic
from tests.harness import EPOCH, TOPIC, Harness

MAX_BYTES = 4_000_000


def test_pending_bytes_stay_under_the_bound_while_the_endpoint_does_not_answer() -> None:
    # 20 KB events; 200 records per partition would hold 3 x 200 x 40 KB = 24 MB.
    h = Harness(seed=5, kafka__max_pending_bytes=MAX_BYTES, kafka__fetch_max_records=20)
    h.endpoint.latency_s = 3600.0  # every request hangs for an hour
    try:
        h.start()
        h.produce(600, size=20_000)
        h.run_for(30)
        consumed = sum(
            s.value
            for m in h.pipeline.metrics.consumed.collect()
            for s in m.samples
            if s.name.endswith("_total")
        )
        held = consumed * record_bytes(h.broker.records(TOPIC)[0])
        one_fetch = 20 * record_bytes(h.broker.records(TOPIC)[0])
        assert held <= MAX_BYTES + one_fetch, f"{consumed} records read, {held} bytes held"
        assert set(h.source.paused()) == h.source.assignment(), "everything paused"
        h.endpoint.latency_s = 0.005  # the endpoint answers again: everything goes through
        h.run_until(h.all_finished, 7200, "every event delivered")
    finally:
        h.stop()


def _park(h: Harness, tier: int, count: int, due_in_s: float) -> None:
    """``count`` events parked on ``<topic>.retry.<tier>`` by an earlier configuration."""
    before = set(h.produced)
    h.produce(count)
    new = set(h.produced) - before
    for record in [r for r in h.broker.records(TOPIC) if (r.topic, r.partition, r.offset) in new]:
        headers = retry_headers(
            record, attempts=3, not_before_ms=int((EPOCH + h.loop.time() + due_in_s) * 1000)
        )
        h.broker.append(
            retry_topic(TOPIC, tier), record.partition, record.key, record.value, headers
        )
    h.broker.committed.update(
        {tp: len(h.broker.log(TOPIC, tp.partition)) for tp in _source_partitions(h)}
    )


def _source_partitions(h: Harness) -> list[object]:
    from aiokafka import TopicPartition

    return [TopicPartition(TOPIC, p) for p in range(h.broker.partitions)]


def test_records_parked_on_tiers_beyond_the_configured_count_are_still_delivered() -> None:
    h = Harness(seed=6, retry__tiers="2")  # was 2,5,10: tiers 2 and 3 hold parked records
    try:
        _park(h, 3, 30, due_in_s=5)
        _park(h, 2, 30, due_in_s=1)
        h.start()
        h.run_until(lambda: len(h.delivered()) == 60, 60, "the parked events delivered")
        assert h.dead_letters() == []
        h.run_until(h.all_committed, 30, "the stranded tiers committed to their end")
    finally:
        h.stop()


def test_a_stranded_tier_record_that_fails_again_goes_past_the_last_tier_to_dead_letters() -> None:
    h = Harness(seed=7, retry__tiers="2", retry__attempts=1)
    try:
        # The endpoint answers, but the event's receipt says it failed (no code: retry) every
        # time: a failure of the event, so one try, then the next tier. (A 500 to every request
        # would be an outage in the making: the batch would wait for it, not walk the tiers.)
        h.endpoint.mode = "receipts"
        h.endpoint.receipt_fail_every = 1
        value = orjson.dumps(_valid(h))
        record = h.broker.append(TOPIC, 0, b"u", value, (), 0)
        headers = retry_headers(record, attempts=5, not_before_ms=0)
        h.broker.append(retry_topic(TOPIC, 4), 0, b"u", value, headers)
        h.broker.committed[_source_partitions(h)[0]] = 1  # type: ignore[index]
        h.start()
        h.run_until(lambda: h.dead_letters(), 60, "dead-lettered")
        assert list(h.dead_letter_reasons().values()) == ["retries_exhausted"]
        assert origin_of(h.dead_letters()[0]).topic == TOPIC
        for tier in (1, 2, 3, 5):
            assert h.broker.records(retry_topic(TOPIC, tier)) == [], tier
        h.run_until(h.all_committed, 30, "the stranded tier committed")
    finally:
        h.stop()


def _valid(h: Harness) -> dict[str, object]:
    from forwarder.commands.traffic import TrafficGenerator

    return TrafficGenerator(seed=1, run_id="p").valid(now=EPOCH + h.loop.time())


def test_topic_map_adopts_only_tiers_beyond_the_configuration() -> None:
    topics = TopicMap(["a", "a.b"], [5.0])
    adopted = topics.adopt(
        ["a", "a.retry.1", "a.retry.2", "a.retry.10", "a.retry.x", "a.retry.02", "a.b.retry.3"]
    )
    assert adopted == ["a.retry.2", "a.retry.10", "a.b.retry.3"]
    assert topics.role("a.retry.10").tier == 10 and topics.role("a.b.retry.3").source == "a.b"
    assert topics.next_tier("a.retry.2") is None  # on to the dead-letter topic
    assert topics.dlq_for("a.retry.10") == "a.dlq"
    assert "a.retry.10" in topics.consumed
    assert topics.adopt(["a.retry.2"]) == []
