"""The endpoint health state machine alone: which scope a failure is charged to, and when the
endpoint as a whole is down."""

from __future__ import annotations

import math

from forwarder.core.destinations import DestinationState
from forwarder.core.health import Admission, EndpointHealth, HealthSettings, Outcome, State

A, B = "db.a", "db.b"


def _health(down_after_failures: int = 3) -> EndpointHealth:
    return EndpointHealth(HealthSettings(down_after_failures, down_after_s=5.0), 8)


def _fail(health: EndpointHealth, now: float, batch: object, dest: str = A, **kw: object) -> None:
    health.observe(Outcome.FAILED, now, destination=dest, batch=str(batch), **kw)  # type: ignore[arg-type]


def test_a_run_of_failures_is_unresolved_from_any_moment_after_it_began() -> None:
    health = _health()
    _fail(health, 1.0, 1)
    _fail(health, 2.0, 2)
    assert health.unresolved(A, 1.0, "1", 1.0) and health.unresolved(A, 2.5, "1", 2.5)


def test_one_working_answer_resolves_the_failures_sent_before_it() -> None:
    health = _health()
    _fail(health, 1.0, 1)
    health.observe(Outcome.WORKING, 2.0, destination=A)
    assert not health.unresolved(A, 1.0, "1", 1.0), (
        "something worked since: the failure was its own"
    )
    _fail(health, 3.0, 1)
    assert health.unresolved(A, 3.0, "1", 3.0), "a new run: maybe an outage's start"


def test_once_the_outage_is_declared_nothing_is_unresolved() -> None:
    health = _health()
    for moment, batch in ((0.0, 1), (3.0, 2), (6.0, 1)):
        _fail(health, moment, batch)
    assert health.state is State.DOWN
    assert not health.unresolved(A, 0.0, "1", 0.0), (
        "down: the delivery waits, it does not hold a try"
    )


def test_one_batch_failing_alone_never_declares_an_outage() -> None:
    # A poison batch on a quiet topic: however long it fails, nothing else has been tried.
    health = _health()
    for second in range(100):
        _fail(health, float(second), batch=7)
    assert health.state is State.DEGRADED
    assert health.unresolved(A, 95.0, "7", 99.0), "it may be an outage's start, for a while"
    assert not health.unresolved(A, 89.0, "7", 99.0), "alone for 10 s: charged to the batch"


def test_a_refused_connection_declares_the_outage_from_one_batch() -> None:
    health = _health()
    for moment in (0.0, 3.0, 6.0):
        _fail(health, moment, batch=7, unreachable=True)
    assert health.state is State.DOWN


def test_requests_that_hang_to_their_timeout_count_from_when_they_were_sent() -> None:
    # max_in_flight 2, every request fails at its 10 s timeout: the first two answers are the
    # run's only failures, and they already span 10 s from their sending.
    health = _health(down_after_failures=10)
    _fail(health, 10.0, batch=1, sent_at=0.0)
    assert health.state is State.DEGRADED
    _fail(health, 10.0, batch=2, sent_at=0.0)
    assert health.state is State.DOWN, "two batches, nothing working for twice down_after_s"


def test_the_failure_count_declares_an_outage_only_after_down_after_s() -> None:
    health = _health(down_after_failures=3)
    for moment, batch in ((0.0, 1), (0.1, 2), (0.2, 3), (0.3, 4)):
        _fail(health, moment, batch)
    assert health.state is State.DEGRADED, "a burst of concurrent failures is not an outage"
    _fail(health, 5.0, batch=1)
    assert health.state is State.DOWN


def test_a_destination_failing_while_another_works_is_degraded_and_never_an_outage() -> None:
    health = _health()
    for second in range(60):
        _fail(health, float(second), batch=second % 4, dest=A)
        health.observe(Outcome.WORKING, second + 0.5, destination=B)
        assert health.state is not State.DOWN
    assert health.state is State.HEALTHY
    assert health.destinations.state(A) is DestinationState.DEGRADED
    assert health.destinations.state(B) is DestinationState.HEALTHY
    _fail(health, 61.0, batch=1, dest=A)
    assert not health.unresolved(A, 61.0, "1", 61.0), "its own fault: charged at once"
    assert health.unresolved(B, 61.0, "1", 61.0), "B's next failure may still be an outage's start"


def test_a_flake_of_a_destination_is_not_yet_its_degradation() -> None:
    health = _health()
    _fail(health, 1.0, 1, dest=A)
    health.observe(Outcome.WORKING, 2.0, destination=B)
    assert health.destinations.state(A) is DestinationState.FAILING
    _fail(health, 3.0, 2, dest=A)  # an outage begins: A's failures may be its start
    assert health.unresolved(A, 3.0, "1", 3.0)


def test_a_destination_failing_while_nothing_else_works_is_only_failing() -> None:
    health = _health()
    _fail(health, 1.0, 1)
    assert health.destinations.state(A) is DestinationState.FAILING
    health.observe(Outcome.WORKING, 2.0, destination=A)
    assert health.destinations.state(A) is DestinationState.HEALTHY


def test_while_a_probe_is_in_flight_its_answer_not_the_clock_is_awaited() -> None:
    health = _health()
    for moment, batch in ((0.0, 1), (3.0, 2), (6.0, 1)):
        _fail(health, moment, batch)
    assert health.next_probe_in(6.0) == 1.0
    assert health.admit(7.0) is Admission.PROBE
    assert health.next_probe_in(8.0) == math.inf
    assert health.admit(8.0) is Admission.WAIT
    health.observe(Outcome.WORKING, 8.5, probe=True, destination=B)
    assert health.state is State.HEALTHY


def test_the_probe_interval_doubles_up_to_its_cap() -> None:
    health = EndpointHealth(
        HealthSettings(3, 5.0, probe_interval_s=1.0, probe_interval_max_s=3.0), 8
    )
    for moment, batch in ((0.0, 1), (3.0, 2), (6.0, 1)):
        _fail(health, moment, batch)
    gaps = []
    now = 6.0
    for _ in range(5):
        now += health.next_probe_in(now)
        assert health.admit(now) is Admission.PROBE
        _fail(health, now, batch=1, probe=True)
        gaps.append(health.next_probe_in(now))
    assert gaps == [2.0, 3.0, 3.0, 3.0, 3.0]
