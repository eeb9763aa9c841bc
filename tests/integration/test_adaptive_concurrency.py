"""Adaptive concurrency against the sandbox's capacity model: the limit settles near the
endpoint's capacity with few 429s, and every event is delivered."""

from __future__ import annotations

import asyncio

import httpx

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox

from .support import REGISTRY, config_for, running, sandbox_stats, wait_delivered, wait_for

CAPACITY = 4
EVENTS = 8_000


async def test_adaptive_concurrency_settles_near_the_sandbox_capacity_with_few_429s(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        response = await http.put("/_sandbox/faults", json={"capacity": CAPACITY, "service_ms": 40})
        assert response.status_code == 200, response.text
    sent = await produce(kafka, topic, TrafficGenerator(seed=28, run_id=topic), EVENTS)
    config = config_for(
        kafka,
        topic,
        sandbox.url,
        limits__max_in_flight="adaptive",
        limits__adaptive_max=32,
        batch__max_events=20,
        health__probe_events=10,
    )
    pipeline = Pipeline(config, REGISTRY)
    gauge = pipeline.metrics.concurrency_limit
    limits: list[int] = []  # every 0.1 s while the backlog lasts (a tenth still to deliver)
    recorded = sandbox.sandbox.recorder.counts

    async def sample() -> None:
        while len(recorded) < 0.9 * len(sent):
            limits.append(int(gauge._value.get()))
            await asyncio.sleep(0.1)

    async def limit_reached() -> bool:
        return bool(gauge._value.get() >= CAPACITY)

    async with running(pipeline):
        sampler = asyncio.create_task(sample())
        try:
            await wait_for(limit_reached, 30, "the limit up to the capacity", every=0.05)
            before = await sandbox_stats(sandbox.url)
            await wait_delivered(sandbox.url, len(sent), 120, f"{len(sent)} events delivered")
            after = await sandbox_stats(sandbox.url)
        finally:
            sampler.cancel()
    refused = after["rejected"].get("429:2013", 0) - before["rejected"].get("429:2013", 0)
    requests = after["requests"] - before["requests"]
    assert after["distinct_uuids"] == len(sent)
    assert refused <= 0.03 * requests, (refused, requests)
    settled = limits[limits.index(CAPACITY) :]
    assert settled and max(settled) <= CAPACITY + 1 and min(settled) >= CAPACITY - 1, limits
