"""Service health: 401/404 make it misconfigured until an answer says otherwise; probes back off."""

from forwarder.core.service_health import LOG_INTERVAL_S, Change, ServiceHealth


def test_401_or_404_enter_and_the_next_other_answer_leaves() -> None:
    health = ServiceHealth()
    assert health.observe(200) is None
    assert health.observe(401) is Change.ENTERED
    assert health.observe(404) is None
    assert health.cause == 404
    assert health.observe(None) is None  # a transport failure says nothing
    assert health.misconfigured
    assert health.observe(503) is Change.LEFT
    assert not health.misconfigured


def test_probe_delays_grow_to_the_cap_and_restart_after_recovery() -> None:
    health = ServiceHealth(probe_initial_s=1.0, probe_max_s=8.0)
    health.observe(401)
    top = [health.next_probe_delay(lambda lo, hi: hi) for _ in range(6)]
    assert top == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    low = health.next_probe_delay(lambda lo, hi: lo)
    assert low == 4.0  # never less than half the ceiling: no probe storm
    health.observe(200)
    assert health.next_probe_delay(lambda lo, hi: hi) == 1.0


def test_the_cause_is_logged_once_per_interval() -> None:
    health = ServiceHealth()
    assert health.should_log(0.0)
    assert not health.should_log(LOG_INTERVAL_S - 1)
    assert health.should_log(LOG_INTERVAL_S)
