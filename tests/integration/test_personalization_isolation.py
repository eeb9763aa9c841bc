"""A hanging personalization service does not slow ingestion or its offset commits."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.config import Config
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .p13n_support import control, p13n_config, p13n_requests, sample
from .support import REGISTRY, config_for, running, sandbox_stats, wait_for

EVENTS = 20_000


async def _committed(kafka: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(
        m.offset
        for tp, m in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic
    )


async def _ingest_rate(
    kafka: str, config: Config, sandbox: RunningSandbox, topic: str
) -> tuple[float, Pipeline]:
    """Events/s from the first to the last event at the sandbox; offsets committed to the end."""
    base = (await sandbox_stats(sandbox.url))["accepted_events"]
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        first = last = 0.0

        async def started() -> bool:
            nonlocal first
            first = time.monotonic()
            return (await sandbox_stats(sandbox.url))["accepted_events"] > base

        async def finished() -> bool:
            nonlocal last
            last = time.monotonic()
            return (await sandbox_stats(sandbox.url))["accepted_events"] >= base + EVENTS

        await wait_for(started, 60, "the first events ingested", every=0.02)
        await wait_for(finished, 120, "every event ingested", every=0.02)

        async def committed() -> bool:
            return await _committed(kafka, config.kafka.group_id, topic) >= EVENTS

        await wait_for(committed, 15, "every offset committed while the service hangs")
    return EVENTS / max(last - first, 1e-3), pipeline


async def test_a_hanging_personalization_service_leaves_ingest_throughput_and_commits_alone(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    plain, hung = (f"iso-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (plain, hung):
        await create_topic(kafka, name, 3)
        await produce(kafka, name, TrafficGenerator(seed=5, run_id=name), EVENTS)
    baseline, _ = await _ingest_rate(kafka, config_for(kafka, plain, sandbox.url), sandbox, plain)
    await control(sandbox.url, faults={"hang_rate": 1.0})
    config = p13n_config(
        kafka,
        hung,
        sandbox.url,
        tmp_path,
        triggers=["page_view", "product_view"],
        timeout_s=1.0,
        queue_max_entries=500,
    )
    with_p13n, pipeline = await _ingest_rate(kafka, config, sandbox, hung)
    dropped = sum(
        sample(pipeline, "forwarder_personalization_triggers_dropped_total", cause=cause)
        for cause in ("queue_full", "superseded", "stale")
    )
    hanging = (await p13n_requests(sandbox.url))["statuses"].get("hang", 0)
    print(f"ingest {baseline:.0f} events/s alone, {with_p13n:.0f} with a hanging service")
    assert hanging >= 1, "the service was called and hung"
    assert dropped > 0, "triggers were dropped (counted), not held"
    assert with_p13n >= 0.5 * baseline
