"""A fault stays in the smallest scope that explains it, on the real broker and sandbox: one
poison event on a quiet topic stops nothing, and an outage of hanging requests is waited out
without taking a retry tier. (One table failing for good while the others flow is in
test_failure_routing.py.)"""

from __future__ import annotations

import asyncio
import time

import orjson

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.core.health import State
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox

from .support import (
    REGISTRY,
    config_for,
    headers_of,
    read_all,
    running,
    sandbox_uuids,
    set_faults,
    uuid_of,
    wait_for,
)


async def test_a_poison_event_on_a_quiet_topic_stops_nothing_and_is_dead_lettered(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    (poison,) = await produce(kafka, topic, TrafficGenerator(seed=41, run_id=f"{topic}-p"), 1)
    assert poison.event_id
    # 500/2012 "Lambda function threw an error" for every batch holding this one event.
    await set_faults(sandbox.url, fail_match={"field": "event_id", "value": poison.event_id})
    config = config_for(
        kafka,
        topic,
        sandbox.url,
        retry__attempts=2,
        retry__backoff_initial_ms=10,
        retry__backoff_max_ms=200,
        retry__tiers="1,2",
    )
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):

        async def ready() -> bool:
            return pipeline.readiness()[0]

        await wait_for(ready, 30, "the forwarder ready")
        quiet_until = time.monotonic() + 15
        while time.monotonic() < quiet_until:
            assert pipeline.health.state is not State.DOWN, "one batch failing is no outage"
            assert pipeline.readiness()[0], pipeline.readiness()
            await asyncio.sleep(0.5)
        produced_at = time.monotonic()
        sent = await produce(kafka, topic, TrafficGenerator(seed=42, run_id=topic), 2000)
        expected = {uuid_of(g.event_id) for g in sent if g.event_id}

        async def delivered() -> bool:
            return expected <= set(await sandbox_uuids(sandbox.url))

        await wait_for(delivered, 30, "the 2,000 events delivered")
        took = time.monotonic() - produced_at

        async def dead_lettered() -> bool:
            return bool(await read_all(kafka, f"{topic}.dlq"))

        await wait_for(dead_lettered, 90, "the poison event dead-lettered after its schedule")
    (dead,) = await read_all(kafka, f"{topic}.dlq")
    headers = headers_of(dead)
    assert orjson.loads(dead.value)["event_id"] == poison.event_id
    assert headers["forwarder.error.reason"] == "retries_exhausted"
    assert headers["forwarder.error.code"] == "2012"
    print(f"2,000 events delivered {took:.1f}s after the produce began; the poison dead-lettered")


async def test_an_outage_of_hanging_requests_takes_no_tier_and_dead_letters_nothing(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=43, run_id=topic), 600)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    await set_faults(sandbox.url, hang_rate=1.0)  # every request hangs past the forwarder's timeout
    config = config_for(
        kafka,
        topic,
        sandbox.url,
        limits__max_in_flight=2,
        endpoint__timeout_s=2,
        health__down_after_s=1,
        retry__attempts=2,
        retry__backoff_initial_ms=10,
        retry__backoff_max_ms=20,
        retry__tiers="1,2,3",
    )
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):

        async def down() -> bool:
            return pipeline.health.state is State.DOWN

        await wait_for(down, 30, "the outage of hanging requests declared")
        ready, why = pipeline.readiness()
        assert not ready and "endpoint down" in why, why
        await asyncio.sleep(15)
        await set_faults(sandbox.url, hang_rate=0.0)
        healed = time.monotonic()

        async def delivered() -> bool:
            return expected <= set(await sandbox_uuids(sandbox.url))

        await wait_for(delivered, 60, "caught up after the outage")
        took = time.monotonic() - healed
    for name in ("retry.1", "retry.2", "retry.3", "dlq"):
        assert not await read_all(kafka, f"{topic}.{name}"), f"{name} used by an outage"
    print(f"hanging outage: 0 tier records, 0 dead letters, caught up {took:.1f}s after it ended")
