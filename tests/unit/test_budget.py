"""A batch's retry budget against the endpoint's health: which failed tries are charged."""

from __future__ import annotations

from forwarder.core.budget import RetryBudget, Step
from forwarder.core.health import EndpointHealth, HealthSettings, Outcome


def _health() -> EndpointHealth:
    return EndpointHealth(HealthSettings(down_after_failures=10, down_after_s=5.0), 8)


def test_tries_are_retried_in_process_until_the_last() -> None:
    health, budget = _health(), RetryBudget(3)
    for moment in (1.0, 2.0):
        health.observe(Outcome.FAILED, moment)
        assert (
            budget.failed(moment, lambda since: health.unresolved("", since, "b", since))
            is Step.RETRY
        )
    assert budget.tries == 2


def test_the_last_try_holds_while_nothing_has_worked_since_the_first() -> None:
    health, budget = _health(), RetryBudget(3)
    for moment in (1.0, 1.5, 2.0):
        health.observe(Outcome.FAILED, moment)
        step = budget.failed(moment, lambda since: health.unresolved("", since, "b", since))
    assert step is Step.HOLD, "maybe the start of an outage"


def test_once_anything_worked_the_failures_were_the_batchs_own() -> None:
    health, budget = _health(), RetryBudget(3)
    for moment in (1.0, 1.5, 2.0):
        health.observe(Outcome.FAILED, moment)
        budget.failed(moment, lambda since: health.unresolved("", since, "b", since))
    health.observe(Outcome.WORKING, 2.5)  # another batch accepted
    health.observe(Outcome.FAILED, 3.0)
    assert budget.failed(3.0, lambda since: health.unresolved("", since, "b", since)) is Step.PARK
    assert budget.tries == 3, "the header counts the budget, not the held retries"


def test_failures_charged_while_flaky_and_pending_at_an_outages_start_hold() -> None:
    health, budget = _health(), RetryBudget(3)
    health.observe(Outcome.FAILED, 1.0)
    budget.failed(1.0, lambda since: health.unresolved("", since, "b", since))
    health.observe(Outcome.WORKING, 1.2)  # flaky: others worked, that failure is charged
    for moment in (2.0, 2.5):  # the outage begins
        health.observe(Outcome.FAILED, moment)
        step = budget.failed(moment, lambda since: health.unresolved("", since, "b", since))
    assert step is Step.HOLD, "one charged and two pending: not yet spent"


def test_a_declared_outage_gives_every_try_back() -> None:
    budget = RetryBudget(3, spent=2)
    budget.give_back()
    assert budget.tries == 0
