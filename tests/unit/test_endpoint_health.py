"""The endpoint health state machine alone: whether a batch's failures may be an outage's start."""

from __future__ import annotations

from forwarder.core.health import EndpointHealth, HealthSettings, Outcome, State


def _health(down_after_failures: int = 3) -> EndpointHealth:
    return EndpointHealth(HealthSettings(down_after_failures, down_after_s=5.0), 8)


def test_nothing_is_failing_before_a_failure() -> None:
    assert not _health().failing_since(0.0, 0.0)


def test_a_run_of_failures_is_failing_since_any_moment_after_it_began() -> None:
    health = _health()
    health.observe(Outcome.FAILED, 1.0)
    health.observe(Outcome.FAILED, 2.0)
    assert health.failing_since(1.0, 2.0) and health.failing_since(2.5, 3.0)
    assert not health.failing_since(0.5, 2.0), "a batch failing before the run began saw it work"


def test_one_working_answer_ends_the_run() -> None:
    health = _health()
    health.observe(Outcome.FAILED, 1.0)
    health.observe(Outcome.WORKING, 2.0)
    assert not health.failing_since(1.0, 2.0)
    health.observe(Outcome.FAILED, 3.0)
    assert health.failing_since(3.0, 3.0) and not health.failing_since(1.0, 3.0), "from 3 s"


def test_once_the_outage_is_declared_nothing_is_failing_since_anything() -> None:
    health = _health()
    for moment in (0.0, 3.0, 6.0):
        health.observe(Outcome.FAILED, moment)
    assert health.state is State.DOWN
    assert not health.failing_since(0.0, 6.0), "down: the delivery waits, it does not hold a try"


def test_a_run_not_declared_within_twice_down_after_s_is_not_an_outage_in_the_making() -> None:
    health = _health(down_after_failures=1_000_000)  # out of reach: never declared
    for moment in (0.0, 4.0, 9.0):
        health.observe(Outcome.FAILED, moment)
    assert health.failing_since(0.0, 9.9)
    assert not health.failing_since(0.0, 10.0), "10 s = twice down_after_s: the failures count"
