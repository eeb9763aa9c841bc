"""The endpoint's health as operators see it: its gauges and its log lines, kept in step.

``forwarder.core.health`` decides the state; this reports it: ``endpoint_state{state}`` set to
1 for the current state only, ``paused{code}`` while paused, an ``endpoint_down`` or
``endpoint_paused`` error line at once and then every ``interval_s`` while it lasts, and
``endpoint_resumed`` when it ends.
"""

from __future__ import annotations

from typing import Any

from forwarder.core.classify import Policy
from forwarder.core.health import EndpointHealth, State
from forwarder.metrics import Metrics


class HealthReport:
    def __init__(self, metrics: Metrics, policy: Policy, log: Any, interval_s: float) -> None:
        self._metrics = metrics
        self._policy = policy
        self._log = log
        self._interval_s = interval_s
        self._logged_at = float("-inf")
        self._shown_state = State.HEALTHY
        self._shown_code = ""
        metrics.endpoint_state.labels(State.HEALTHY.value).set(1)

    def update(self, health: EndpointHealth, now: float) -> None:
        """After every request: move the gauges on a change, log while down or paused."""
        code = self._policy.code_label(health.cause_code)
        shown = self._shown_state
        if health.state is not shown or (health.blocked and code != self._shown_code):
            self._metrics.endpoint_state.labels(shown.value).set(0)
            self._metrics.endpoint_state.labels(health.state.value).set(1)
            if shown is State.PAUSED:
                self._metrics.paused.labels(self._shown_code).set(0)
            if health.state is State.PAUSED:
                self._metrics.paused.labels(code).set(1)
            if health.blocked and shown in (State.HEALTHY, State.DEGRADED):
                self._logged_at = float("-inf")
            if not health.blocked and shown in (State.DOWN, State.PAUSED):
                self._log.info("endpoint_resumed", was=shown.value, ramp_s=health.settings.ramp_s)
            self._shown_state, self._shown_code = health.state, code
        if health.blocked and now - self._logged_at >= self._interval_s:
            self._logged_at = now
            down = health.state is State.DOWN
            self._log.error(
                "endpoint_down" if down else "endpoint_paused",
                cause=health.cause,
                code=health.cause_code,
                for_s=round(now - (health.since or now), 1),
                next_probe_in_s=round(health.next_probe_in(now), 1),
                action=(
                    "waiting for the endpoint; nothing is dead-lettered, delivery resumes by itself"
                    if down
                    else "fix the credentials or the endpoint configuration; probing until it works"
                ),
            )
