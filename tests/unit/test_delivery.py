"""Every delivery path on the in-memory fakes, in virtual time: outages, pauses, publish faults."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
import structlog.testing

from forwarder.core.classify import SendResult
from forwarder.core.health import State
from forwarder.ports import PublishResult
from tests.fakes import identity_of
from tests.harness import TOPIC, Harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(seed=1)
    yield h
    h.stop()


@pytest.mark.parametrize("mode", ["down", "refused", "throttled"])
def test_an_outage_longer_than_every_retry_tier_ends_in_a_catch_up_not_dead_letters(
    harness: Harness, mode: str
) -> None:
    harness.endpoint.mode = mode
    harness.start()
    harness.produce(300)
    harness.run_until(lambda: harness.pipeline.health.state is State.DOWN, 60, "endpoint down")
    ready, why = harness.readiness()
    assert not ready and "endpoint down" in why, why
    # An hour, against a retry schedule (3 tries, tiers 2 s, 5 s, 10 s) of well under a minute.
    harness.run_for(3600)
    assert harness.dead_letters() == [], "an outage must not dead-letter anything"
    assert not harness.delivered()
    for tier in (1, 2, 3):
        # Not even at its start: until the outage is declared (10 failures over 5 s), nothing
        # has worked since the batches' first failures, so they wait instead of taking a tier.
        assert harness.broker.records(f"{TOPIC}.retry.{tier}") == [], f"retry.{tier} was used"
    requests_during = len(harness.endpoint.requests)
    harness.endpoint.mode = "ok"
    took = harness.run_until(harness.all_finished, 300, "every event delivered and committed")
    assert len(harness.delivered()) == 300
    assert harness.readiness() == (True, "ready")
    print(f"{mode}: {requests_during} requests in the outage hour, caught up in {took:.1f}s")


def test_while_down_only_one_probe_at_a_time_goes_out_at_a_growing_interval(
    harness: Harness,
) -> None:
    harness.endpoint.mode = "down"
    harness.start()
    harness.produce(200)
    harness.run_until(lambda: harness.pipeline.health.blocked, 60, "endpoint down")
    start = len(harness.endpoint.requests)
    harness.run_for(600)
    probes = harness.endpoint.requests[start:]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert all(events <= 10 for _, _, events in probes), "a probe is a small batch"
    # 1 s doubling to the 3 s cap: 600 s hold about 200 probes, one at a time.
    assert 180 <= len(probes) <= 210, len(probes)
    assert min(gaps) >= 0.99 and max(gaps) <= 3.5, gaps
    firsts = [ids[0] for _, ids in harness.endpoint.sent[start:]]
    assert all(a != b for a, b in itertools.pairwise(firsts)), "never the same batch twice"
    assert len(set(firsts)) >= 10, "probes rotate through the waiting batches"


def test_a_batch_failing_while_the_endpoint_works_walks_the_tiers_to_retries_exhausted(
    harness: Harness,
) -> None:
    # A 500 for the batches holding one event, while the other batches are accepted: the
    # endpoint works, so the failures spend that batch's budget, tier by tier.
    harness.start()
    harness.produce(1)
    (failing,) = harness.produced
    harness.endpoint.failing_ids = {harness.produced[failing] or ""}
    for _ in range(120):  # traffic for up to 60 s: 3 tries per tier, tiers of 2 s, 5 s, 10 s
        if harness.dead_letters():
            break
        harness.produce(5)
        harness.run_for(0.5)
    dead = harness.dead_letter_reasons()
    assert dead.get(failing) == "retries_exhausted"
    assert set(dead.values()) == {"retries_exhausted"}
    for tier in (1, 2, 3):
        copies = harness.broker.records(f"{TOPIC}.retry.{tier}")
        assert failing in {identity_of(r) for r in copies}, f"not parked on retry.{tier}"
    assert harness.pipeline.health.state is not State.DOWN, "never an outage"
    harness.run_until(harness.all_finished, 120, "the others delivered")
    print(
        f"{len(dead)} dead-lettered (the failing event's batch), {len(harness.delivered())} delivered"
    )


def test_with_the_failure_count_out_of_reach_an_outage_is_declared_after_twice_down_after_s() -> (
    None
):
    # Every request fails, from many batches, but never the 1,000,000 failures: nothing having
    # worked for twice down_after_s (10 s) is an outage all the same, and no tier is taken.
    h = Harness(seed=3, health__down_after_failures=1_000_000)
    try:
        h.endpoint.mode = "down"
        h.start()
        h.produce(30)
        took = h.run_until(lambda: h.pipeline.health.blocked, 30, "the outage declared")
        assert 9.9 <= took <= 12, took
        h.run_for(120)
        for tier in (1, 2, 3):
            assert h.broker.records(f"{TOPIC}.retry.{tier}") == [], f"retry.{tier} was used"
        assert h.dead_letters() == []
    finally:
        h.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_that_waited_out_an_outage_start_again_with_their_whole_budget(seed: int) -> None:
    # Found in review: a batch held at its last try while the outage was declared by other
    # requests, then let through at recovery, parked on its first failure after it.
    h = Harness(seed=seed)
    try:
        h.endpoint.mode = "down"
        h.start()
        for _ in range(40):
            h.produce(20)
            h.run_for(1.0)
        h.endpoint.mode = "ok"
        h.run_until(lambda: not h.pipeline.health.blocked, 60, "recovered")
        h.run_for(0.3)
        h.endpoint.mode, h.endpoint.flaky_every = "flaky", 1  # a 0.5 s blip, far from an outage
        h.run_for(0.5)
        h.endpoint.mode = "ok"
        h.run_until(h.all_finished, 300, "every event delivered")
        for tier in (1, 2, 3):
            assert h.broker.records(f"{TOPIC}.retry.{tier}") == [], f"retry.{tier} was used"
        assert h.dead_letters() == []
    finally:
        h.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tries_spent_on_a_flaky_endpoint_do_not_make_the_start_of_an_outage_take_a_tier(
    seed: int,
) -> None:
    # Found in review: a batch whose first failure came while the endpoint was flaky (and
    # other requests then worked) took a tier in the first seconds of the outage that followed
    # (3-11 of them for these seeds). Its flaky failures are charged; its failures in the
    # outage's start are not. (A batch that had spent all its tries while flaky, one request
    # in four failing here, would rightly take a tier at its next failure, whenever it came.)
    h = Harness(seed=seed)
    try:
        h.endpoint.mode, h.endpoint.flaky_every = "flaky", 4
        h.start()
        for _ in range(20):
            h.produce(20)
            h.run_for(0.1)
        before = len(h.broker.records(f"{TOPIC}.retry.1"))
        # event id -> requests that failed holding it, before the outage
        flakes = Counter(
            event_id
            for (_, ids), (_, status, _) in zip(h.endpoint.sent, h.endpoint.requests, strict=True)
            if status == "500"
            for event_id in ids
        )
        h.endpoint.mode = "down"
        h.run_until(lambda: h.pipeline.health.blocked, 60, "the outage declared")
        parked = h.broker.records(f"{TOPIC}.retry.1")[before:]
        attempts = h.config.retry.attempts
        early = [r for r in parked if flakes[orjson.loads(r.value)["event_id"]] < attempts]
        assert early == [], "a tier taken in its start by a batch with tries left"
    finally:
        h.stop()


def test_a_pause_code_holds_everything_then_resumes_when_the_token_is_fixed(
    harness: Harness,
) -> None:
    harness.endpoint.mode = "unauthorized"
    harness.start()
    harness.produce(100)
    harness.run_until(lambda: harness.pipeline.health.state is State.PAUSED, 10, "paused")
    ready, why = harness.readiness()
    assert not ready and "paused" in why and "3001" in why, why
    harness.run_for(900)
    assert harness.dead_letters() == []
    assert harness.pipeline.metrics.paused.labels("3001")._value.get() == 1
    harness.endpoint.mode = "ok"
    harness.run_until(harness.all_finished, 120, "delivered after the fix")
    assert harness.pipeline.metrics.paused.labels("3001")._value.get() == 0, "alert would fire on"
    assert harness.readiness() == (True, "ready")


def test_poison_events_are_dead_lettered_even_during_a_partial_outage(harness: Harness) -> None:
    harness.start()
    harness.produce(100, poison_every=25)
    harness.run_until(harness.all_finished, 120, "every event finished")
    reasons = harness.dead_letter_reasons()
    assert sorted(reasons.values()) == ["rejected"] * 4
    assert len(harness.delivered()) == 96


def test_a_dead_letter_topic_refusing_writes_pauses_reading_and_says_why(harness: Harness) -> None:
    harness.publisher.failure = PublishResult(False, "TopicAuthorizationFailedError", False)
    harness.start()
    harness.produce(60, malformed_every=10)
    harness.run_until(lambda: not harness.readiness()[0], 30, "not ready")
    _ready, why = harness.readiness()
    assert "cannot write" in why and "TopicAuthorizationFailedError" in why, why
    assert harness.source.paused() == harness.source.assignment(), "reading must stop"
    failures = harness.pipeline.metrics.publish_failures
    assert failures.labels(f"{TOPIC}.dlq", "TopicAuthorizationFailedError")._value.get() > 0
    harness.publisher.failure = None
    harness.run_until(harness.all_finished, 120, "dead letters written once allowed")
    assert len(harness.dead_letters()) == 6
    assert harness.readiness() == (True, "ready")


def test_retriable_publish_failures_turn_readiness_off_only_after_the_configured_time() -> None:
    h = Harness(seed=2, health__publish_unready_after_s=20)
    try:
        h.publisher.failure = PublishResult(False, "KafkaTimeoutError", True)
        h.start()
        h.produce(30, malformed_every=3)
        h.run_for(5)
        assert h.readiness() == (True, "ready"), "a short broker hiccup is not unready"
        h.run_until(lambda: not h.readiness()[0], 60, "not ready after 20 s")
        assert "KafkaTimeoutError" in h.readiness()[1]
        assert h.source.paused() != h.source.assignment(), "retriable: reading goes on"
        h.publisher.failure = None
        h.run_until(h.all_finished, 120, "all finished after the broker recovers")
        assert h.readiness() == (True, "ready")
    finally:
        h.stop()


def test_a_receipts_list_shorter_than_the_batch_is_retried_never_acked(harness: Harness) -> None:
    # The last event of each request gets no receipt (and is not accepted): acking the request
    # whole would commit an event that never arrived.
    harness.endpoint.mode = "receipts"
    harness.endpoint.receipt_fail_every = 10**9  # every receipt present says success
    harness.endpoint.receipt_shortfall = 1
    harness.start()
    harness.produce(60)
    harness.run_for(0.5)
    harness.endpoint.receipt_shortfall = 0
    harness.run_until(harness.all_finished, 300, "every event finished")
    assert len(harness.delivered()) == 60, "an event without a receipt was acked unsent"
    assert harness.dead_letters() == []


def test_failed_receipts_are_failures_of_events_not_of_the_endpoint(harness: Harness) -> None:
    harness.endpoint.mode = "receipts"
    harness.endpoint.receipt_fail_every = 1  # every receipt fails, for a minute
    harness.start()
    harness.produce(100)
    states = set()
    for _ in range(120):
        harness.run_for(0.5)
        states.add(harness.pipeline.health.state)
    assert State.DOWN not in states and State.PAUSED not in states, states
    harness.endpoint.receipt_fail_every = 10**9
    harness.run_until(harness.all_finished, 600, "every event finished")


def test_a_receipt_with_3004_dead_letters_the_event_as_rejected_at_once(harness: Harness) -> None:
    harness.endpoint.mode = "receipts"
    harness.endpoint.receipt_fail_every = 5
    harness.endpoint.receipt_failure = {"success": False, "code": 3004}
    harness.start()
    harness.produce(100)
    harness.run_until(harness.all_finished, 300, "every event finished")
    reasons = harness.dead_letter_reasons()
    assert reasons and set(reasons.values()) == {"rejected"}, reasons
    assert harness.broker.records(f"{TOPIC}.retry.1") == [], "a 3004 is not retried"
    assert len(harness.delivered()) + len(reasons) == 100
    dead = harness.dead_letters()[0]
    assert dict(dead.headers)["forwarder.error.code"] == b"3004"
    assert dict(dead.headers)["forwarder.error.status"] == b"400"


def test_a_receipt_with_a_pause_code_pauses_instead_of_spending_retries(harness: Harness) -> None:
    harness.endpoint.mode = "receipts"
    harness.endpoint.receipt_fail_every = 3
    harness.endpoint.receipt_failure = {"success": False, "error": {"code": 3001}}
    harness.start()
    harness.produce(60)
    harness.run_until(lambda: harness.pipeline.health.state is State.PAUSED, 30, "paused")
    harness.run_for(600)
    assert harness.dead_letters() == []
    assert harness.broker.records(f"{TOPIC}.retry.1") == []
    harness.endpoint.receipt_fail_every = 10**9
    harness.run_until(harness.all_finished, 300, "every event finished")
    assert len(harness.delivered()) == 60


@pytest.mark.parametrize(("cap", "within"), [(None, 300 + 60), (20, 20 + 30)])
def test_a_retry_after_of_a_day_holds_the_endpoint_back_only_up_to_the_cap(
    cap: int | None, within: float
) -> None:
    overrides = {} if cap is None else {"retry__max_retry_after_s": cap}
    h = Harness(seed=3, **overrides)
    try:
        h.endpoint.mode = "throttled"
        h.endpoint.retry_after_s = 86_400.0
        with structlog.testing.capture_logs() as logs:
            h.start()
            h.produce(50)
            h.run_until(lambda: len(h.endpoint.requests) > 0, 10, "a first request")
            h.endpoint.mode = "ok"
            took = h.run_until(h.all_finished, within, "delivered once the capped wait is over")
        capped = [e for e in logs if e["event"] == "retry_after_capped"]
        assert capped and capped[0]["retry_after_s"] == 86_400.0
        assert capped[0]["capped_to_s"] == (cap or 300)
        assert h.dead_letters() == []
        print(f"cap {cap or 300}s: delivered {took:.0f} virtual s after a Retry-After of a day")
    finally:
        h.stop()


def test_endpoint_codes_in_metric_labels_are_the_known_ones_or_other() -> None:
    # A code comes from a response body: an endpoint (or a proxy in front of it) answering with
    # ever new numbers must not grow the metrics without bound.
    h = Harness(seed=4, **{"policy__500:5000": "retry"})  # a code named in the config is known
    try:
        h.start()
        for status, code in [(500, 777_001), (500, 1003), (500, 5000), (404, 777_002)]:
            h.endpoint.answer = SendResult(status, orjson.dumps({"code": code}))
            h.produce(10)
            h.run_for(3)
        h.endpoint.answer = SendResult(401, b'{"error": {"code": "888888"}}')
        h.produce(20)  # the 404s dead-lettered the first ones
        h.run_until(lambda: h.pipeline.health.state is State.PAUSED, 30, "paused")
        paused = h.pipeline.metrics.paused
        assert paused.labels("other")._value.get() == 1
        h.endpoint.answer = None
        h.run_until(h.all_finished, 300, "every event finished")
        codes = {
            sample.labels["code"]
            for metric in h.pipeline.metrics.registry.collect()
            for sample in metric.samples
            if "code" in sample.labels
        }
        assert codes <= {"", "other", "1003", "5000"}, codes
        assert {"other", "1003", "5000"} <= codes
        assert paused.labels("other")._value.get() == 0
    finally:
        h.stop()
