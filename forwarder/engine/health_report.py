"""The endpoint's health as operators see it: its gauges and its log lines, kept in step.

``forwarder.core.health`` decides the state; this reports it: ``endpoint_state{state}`` set to
1 for the current state only, ``paused{code}`` while paused, an ``endpoint_down`` or
``endpoint_paused`` error line at once and then every ``interval_s`` while it lasts, and
``endpoint_resumed`` when it ends. Each destination's state likewise:
``destination_state{destination,state}``, a ``destination_degraded`` warning when one starts to
fail alone (then every ``interval_s``) and ``destination_recovered`` when it works again.
"""

from __future__ import annotations

from typing import Any

from forwarder.core.classify import Policy
from forwarder.core.destinations import DestinationState
from forwarder.core.health import EndpointHealth, State
from forwarder.telemetry.metrics import Metrics


class HealthReport:
    def __init__(self, metrics: Metrics, policy: Policy, log: Any, interval_s: float) -> None:
        self._metrics = metrics
        self._policy = policy
        self._log = log
        self._interval_s = interval_s
        self._logged_at = float("-inf")
        self._shown_state = State.HEALTHY
        self._shown_code = ""
        self._destinations: dict[str, DestinationState] = {}
        self._destination_logged_at: dict[str, float] = {}
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
                next_probe_in_s=_seconds(health.next_probe_in(now)),
                action=(
                    "waiting for the endpoint; nothing is dead-lettered, delivery resumes by itself"
                    if down
                    else "fix the credentials or the endpoint configuration; probing until it works"
                ),
            )

    def update_destination(self, health: EndpointHealth, destination: str, now: float) -> None:
        """After a request to ``destination``: its gauge on a change, its log lines."""
        state = health.destinations.state(destination)
        shown = self._destinations.get(destination)
        if state is not shown:
            gauge = self._metrics.destination_state
            if shown is not None:
                gauge.labels(destination, shown.value).set(0)
            gauge.labels(destination, state.value).set(1)
            self._destinations[destination] = state
            if state is DestinationState.HEALTHY and shown is DestinationState.DEGRADED:
                self._log.info("destination_recovered", destination=destination)
                self._destination_logged_at.pop(destination, None)
        if state is DestinationState.DEGRADED and (
            now - self._destination_logged_at.get(destination, float("-inf")) >= self._interval_s
        ):
            self._destination_logged_at[destination] = now
            self._log.warning(
                "destination_degraded",
                destination=destination,
                failing_for_s=round(health.destinations.failing_for(destination, now), 1),
                action=(
                    "its batches walk their retry schedule to the dead-letter topic; the other "
                    "destinations keep flowing; check the table and its backend"
                ),
            )


def _seconds(value: float) -> float | None:
    return None if value == float("inf") else round(value, 1)
