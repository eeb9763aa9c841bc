"""What ``/readyz`` says: whether the forwarder is ready, and if not, why, in one line.

Pure functions of the state the pipeline holds (the endpoint's health, the topics that refuse
writes), so that the pipeline only gathers them. Ready means joined the group, producer up, not
paused or down on an endpoint fault; a fault of a smaller scope (a degraded table, a batch that
fails alone) leaves it ready and is named in the note.
"""

from __future__ import annotations

from collections.abc import Mapping

from forwarder.core.destinations import DestinationState
from forwarder.core.health import EndpointHealth, State
from forwarder.engine.topic_writer import PublishTrouble


def endpoint_blocked(health: EndpointHealth, now: float) -> str | None:
    """Why nothing is sent while the endpoint is down or paused; None while it is not."""
    if not health.blocked:
        return None
    since = now - (health.since or 0.0)
    what = "endpoint down" if health.state is State.DOWN else "paused"
    return f"{what} for {since:.0f}s: {health.cause}; probing, nothing is dead-lettered"


def unwritable_topics(
    trouble: Mapping[str, PublishTrouble], now: float, unready_after_s: float
) -> list[str]:
    """Retry or dead-letter topics that refuse writes, or have failed them for too long."""
    return [
        f"{topic} ({t.error}, for {now - t.since:.0f}s)"
        for topic, t in sorted(trouble.items())
        if not t.retriable or now - t.since >= unready_after_s
    ]


def failing_note(health: EndpointHealth, now: float) -> str:
    """Ready, but say what fails in a scope smaller than the endpoint."""
    destinations = health.destinations
    degraded = [
        f"{d} for {destinations.failing_for(d, now):.0f}s"
        for d in destinations.known()
        if destinations.state(d) is DestinationState.DEGRADED
    ]
    note = f"; degraded destinations: {', '.join(degraded)}" if degraded else ""
    if health.state is State.DEGRADED:
        note += (
            f"; requests failing for {health.failing_for(now):.0f}s "
            "(not an outage so far: one batch, or too short)"
        )
    return note
