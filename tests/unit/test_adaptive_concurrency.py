"""Adaptive concurrency in the whole pipeline, in virtual time, against a capacity-limited
endpoint (``FakeEndpoint.capacity``: at most C requests served at once, slower the more there
are, a 429/2013 at once above C)."""

from __future__ import annotations

from typing import Any

from forwarder.core.classify import SendResult
from forwarder.core.destinations import DestinationState
from tests.fakes import FakeEndpoint
from tests.harness import Harness

PAGE_VIEW = "clickstream.page_view"
EVENTS_PER_S = 400  # more than any capacity here lets through: the endpoint is the bottleneck


def capacity_harness(
    max_in_flight: int | str, capacity: int, latency_s: float = 0.05, **overrides: Any
) -> Harness:
    endpoint = FakeEndpoint(latency_s=latency_s, capacity=capacity)
    settings: dict[str, Any] = {
        "limits__max_in_flight": max_in_flight,
        "limits__adaptive_max": 32,
        "limits__requests_per_second": 0,
        "batch__max_events": 5,
        "health__probe_events": 5,
    }
    return Harness(seed=1, endpoint=endpoint, **(settings | overrides))


def limit_of(h: Harness) -> int:
    return int(h.pipeline.metrics.concurrency_limit._value.get())


def answers_since(h: Harness, since: float) -> tuple[int, int]:
    """Requests accepted (204) and refused (429) since ``since``."""
    late = [status for at, status, _ in h.endpoint.requests if at >= since]
    return late.count("204"), late.count("429")


def drive(h: Harness, seconds: int, events_per_s: int = EVENTS_PER_S) -> list[int]:
    """Keep the topic fuller than the endpoint can drain; the limit at each second."""
    limits = []
    for _ in range(seconds):
        h.produce(events_per_s)
        h.run_for(1)
        limits.append(limit_of(h))
    return limits


def drive_until(h: Harness, condition: Any, what: str, events_per_s: int) -> float:
    """Keep the topic full until ``condition()``: the virtual seconds it took (at most 10)."""
    started = h.loop.time()
    while not condition():
        assert h.loop.time() - started < 10, f"not within 10 virtual seconds: {what}"
        h.produce(events_per_s // 10)
        h.run_for(0.1)
    return h.loop.time() - started


def goodput_and_429s(max_in_flight: int | str, capacity: int) -> tuple[float, float, list[int]]:
    h = capacity_harness(max_in_flight, capacity)
    try:
        h.start()
        limits = drive(h, 10)  # settling
        since = h.loop.time()
        limits += drive(h, 10)
        accepted, refused = answers_since(h, since)
        return accepted / 10, refused / (accepted + refused), limits
    finally:
        h.stop()


def test_adaptive_settles_at_the_capacity_with_the_goodput_of_the_best_static_setting() -> None:
    best, _, _ = goodput_and_429s(6, 6)
    goodput, refused, limits = goodput_and_429s("adaptive", 6)
    assert goodput >= 0.95 * best, (goodput, best)
    assert refused <= 0.01, refused
    assert set(limits[10:]) <= {6, 7}, limits


def test_the_limit_follows_the_capacity_down_and_up_within_ten_seconds() -> None:
    rate = 1200  # more than 16 requests of 5 events at once, each under 0.1 s, let through
    h = capacity_harness("adaptive", 16)
    try:
        h.start()
        assert max(drive(h, 10, rate)) >= 14
        h.endpoint.capacity = 3
        drive_until(h, lambda: limit_of(h) <= 4, "the limit down to the capacity", rate)
        since = h.loop.time()
        drive(h, 5, rate)
        accepted, refused = answers_since(h, since)
        assert refused <= 0.02 * (accepted + refused), (accepted, refused)
        assert limit_of(h) in (3, 4)
        h.endpoint.capacity = 16
        drive_until(h, lambda: limit_of(h) >= 14, "the limit up to the capacity", rate)
    finally:
        h.stop()


def test_a_degraded_table_does_not_shrink_the_healthy_tables_concurrency() -> None:
    # No capacity limit, slow answers: 12 requests in flight take 120 events/s.
    h = capacity_harness("adaptive", 0, latency_s=0.5, limits__adaptive_max=12)
    h.endpoint.destination_answers[PAGE_VIEW] = SendResult(500, b'{"code":1003}')
    try:
        h.start()
        h.run_until(
            lambda: drive(h, 1) and h.pipeline.health.destinations.degraded(PAGE_VIEW),
            30,
            "page_view degraded",
        )
        limits = drive(h, 20)
        states = h.pipeline.health.destinations.state(PAGE_VIEW)
        assert states is DestinationState.DEGRADED
        assert min(limits[8:]) == 12, limits
    finally:
        h.stop()
