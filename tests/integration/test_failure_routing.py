"""Failures end where design.md's error-code table says, against the sandbox's fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from forwarder.commands.demo import total
from forwarder.commands.traffic import Generated, TrafficGenerator, produce, produce_forever
from forwarder.config import Config
from forwarder.core.health import State
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import create_topic, free_port
from forwarder.sandbox import RunningSandbox

from .support import (
    REGISTRY,
    ForwarderProcess,
    config_for,
    env_for,
    headers_of,
    read_all,
    running,
    sandbox_stats,
    sandbox_uuids,
    set_faults,
    uuid_of,
    wait_delivered,
    wait_for,
)

PAGE_VIEW = "clickstream.page_view"


async def _all_delivered(sandbox: RunningSandbox, expected: set[str], timeout: float) -> None:
    await wait_delivered(
        sandbox.url, len(expected), timeout, f"{len(expected)} events at the sandbox"
    )
    assert set(await sandbox_uuids(sandbox.url)) == expected


def _tiered_config(kafka: str, topic: str, sandbox: RunningSandbox, tiers: str) -> Config:
    """Two quick tries in process, then the given retry tiers (seconds, comma-separated).

    These tests are about failures of one table while the others work (an outage of the whole
    endpoint is tests/integration/test_outage.py).
    """
    return config_for(
        kafka,
        topic,
        sandbox.url,
        retry__attempts=2,
        retry__backoff_initial_ms=10,
        retry__backoff_max_ms=20,
        retry__tiers=tiers,
    )


async def test_transient_errors_and_throttling_deliver_everything_within_the_rate_limit(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    rate, burst = 25, 5
    sent = await produce(kafka, topic, TrafficGenerator(seed=11, run_id=topic), 50_000)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    await set_faults(
        sandbox.url,
        errors=[
            {"status": 500, "code": 1003, "rate": 0.10},
            {"status": 429, "code": 2013, "rate": 0.05, "retry_after_s": 1},
        ],
    )
    config = config_for(
        kafka,
        topic,
        sandbox.url,
        limits__requests_per_second=rate,
        limits__burst=burst,
        retry__attempts=6,
        retry__backoff_initial_ms=50,
        retry__backoff_max_ms=500,
    )
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await _all_delivered(sandbox, expected, 120)
    stats = await sandbox_stats(sandbox.url)
    assert stats["rejected"].get("500:1003", 0) > 0
    assert stats["rejected"].get("429:2013", 0) > 0
    assert not await read_all(kafka, f"{topic}.dlq")
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        times = sorted((await http.get("/_sandbox/requests")).json()["times"])
    # In any one-second window, no more requests than the rate plus the burst. The times are
    # the sandbox's arrival times: scheduling jitter between the limiter and the server (0.1 s
    # allowed on a shared machine) can bring requests sent just over a second apart into one
    # window. The exact bound at the sender is checked in virtual time by
    # tests/unit/test_delivery_model.py.
    allowed = math.floor(burst + rate * (1 + 0.1))
    start = 0
    worst = 0
    for end, stamp in enumerate(times):
        while stamp - times[start] >= 1.0:
            start += 1
        worst = max(worst, end - start + 1)
    assert worst <= allowed, f"{worst} requests in one second (limit {rate} + burst {burst})"
    print(f"{len(times)} requests, at most {worst} in any second (limit {rate} + burst {burst})")


@contextlib.asynccontextmanager
async def _other_traffic(kafka: str, topic: str) -> AsyncIterator[None]:
    """Traffic of every table at 20 events/s while the block runs: what shows whose fault it is."""
    task = asyncio.create_task(
        produce_forever(kafka, topic, TrafficGenerator(seed=77, run_id=f"{topic}-t"), 20)
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _of_table(sent: list[Generated], table: str) -> set[bytes]:
    return {g.value for g in sent if orjson.loads(g.value)["event_type"] == table}


async def test_one_table_failing_for_good_walks_its_tiers_while_the_others_flow(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=12, run_id=topic), 40)
    failing = _of_table(sent, "page_view")
    healthy = {uuid_of(g.event_id) for g in sent if g.event_id and g.value not in failing}
    assert failing and healthy
    await set_faults(
        sandbox.url,
        errors=[{"status": 503, "rate": 1.0, "retry_after_s": 0}],
        fault_destinations=[PAGE_VIEW],
    )
    config = _tiered_config(kafka, topic, sandbox, "1,2")
    pipeline = Pipeline(config, REGISTRY)
    async with _other_traffic(kafka, topic), running(pipeline):

        async def all_dead() -> bool:
            dead = {r.value for r in await read_all(kafka, f"{topic}.dlq")}
            return failing <= dead

        await wait_for(all_dead, 90, "every page_view event dead-lettered after the last tier")
        assert pipeline.readiness()[0], pipeline.readiness()
        assert pipeline.health.state is not State.DOWN
    assert healthy <= set(await sandbox_uuids(sandbox.url)), "the other tables flowed"
    tier1 = [r for r in await read_all(kafka, f"{topic}.retry.1") if r.value in failing]
    tier2 = [r for r in await read_all(kafka, f"{topic}.retry.2") if r.value in failing]
    dlq = [r for r in await read_all(kafka, f"{topic}.dlq") if r.value in failing]
    assert len(tier1) == len(tier2) == len(dlq) == len(failing)
    for tier, delay in ((tier1, 1), (tier2, 2)):
        for record in tier:
            headers = headers_of(record)
            assert headers["forwarder.original.topic"] == topic
            due_ms = int(headers["forwarder.not_before"])
            # Parked "delay" seconds after the failure, which is just before the record's write.
            assert 0 <= due_ms - record.timestamp <= delay * 1000 + 500
    tier2_due = {r.value: int(headers_of(r)["forwarder.not_before"]) for r in tier2}
    for record in dlq:
        headers = headers_of(record)
        assert headers["forwarder.error.reason"] == "retries_exhausted"
        assert headers["forwarder.error.status"] == "503"
        assert headers["forwarder.attempts"] == "6"  # 2 in process on each of 3 passes
        # A tier record is never sent before its due time.
        assert record.timestamp >= tier2_due[record.value]


async def test_recovery_before_the_last_tier_delivers_instead(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=13, run_id=topic), 40)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    failing = _of_table(sent, "page_view")
    await set_faults(
        sandbox.url,
        errors=[{"status": 500, "code": 1001, "rate": 1.0}],
        fault_destinations=[PAGE_VIEW],
    )
    config = _tiered_config(kafka, topic, sandbox, "2,30")
    pipeline = Pipeline(config, REGISTRY)
    async with _other_traffic(kafka, topic), running(pipeline):

        async def parked() -> bool:
            tier1 = {r.value for r in await read_all(kafka, f"{topic}.retry.1")}
            return failing <= tier1

        await wait_for(parked, 60, "page_view events parked on tier 1")
        await set_faults(sandbox.url, errors=[])

        async def delivered() -> bool:
            return expected <= set(await sandbox_uuids(sandbox.url))

        await wait_for(delivered, 30, "every event delivered")
    assert not await read_all(kafka, f"{topic}.dlq")
    assert not await read_all(kafka, f"{topic}.retry.2")


async def test_poison_events_are_isolated_and_only_they_are_dead_lettered(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    generator = TrafficGenerator(seed=14, run_id=topic)
    events = [generator.valid() for _ in range(20_000)]
    poison_at = set(range(333, 20_000, 20_000 // 30))
    assert len(poison_at) == 30
    for index in poison_at:
        events[index]["poison"] = True
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=20)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, orjson.dumps(event))
        await producer.flush()
    finally:
        await producer.stop()
    await set_faults(sandbox.url, reject_match={"field": "poison", "value": True})
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url), REGISTRY)
    good = {uuid_of(e["event_id"]) for i, e in enumerate(events) if i not in poison_at}
    async with running(pipeline):
        await _all_delivered(sandbox, good, 60)

        async def poison_dead() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) >= 30

        await wait_for(poison_dead, 30, "the 30 poison events in the DLQ")
    dlq = await read_all(kafka, f"{topic}.dlq")
    assert len(dlq) == 30
    assert {orjson.loads(r.value)["event_id"] for r in dlq} == {
        events[i]["event_id"] for i in poison_at
    }
    for record in dlq:
        headers = headers_of(record)
        assert (headers["forwarder.error.reason"], headers["forwarder.error.status"]) == (
            "rejected",
            "400",
        )
        assert headers["forwarder.error.code"] == "3004"
    registry = pipeline.metrics.registry
    extra = total(registry, "forwarder_isolation_extra_requests_total")
    isolated = total(registry, "forwarder_events_isolated_total")
    batches = total(registry, "forwarder_batch_size_events_count")
    bound = 2 * 30 * math.ceil(math.log2(500))
    print(
        f"isolation: {isolated:.0f} events isolated with {extra:.0f} extra requests over {batches:.0f} batches (bound {bound})"
    )
    assert isolated == 30
    assert 0 < extra <= bound


async def test_partial_receipts_retry_only_the_failed_events(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=15, run_id=topic), 5_000)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    # 500/1003 in a receipt: a backend failed for these events, they follow the retry path.
    await set_faults(sandbox.url, receipts_fail_rate=0.1, receipts_code=1003)
    config = config_for(kafka, topic, sandbox.url, retry__attempts=8, retry__backoff_initial_ms=10)
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await _all_delivered(sandbox, expected, 60)
    stats = await sandbox_stats(sandbox.url)
    # An accepted event is never sent again: the successes of a 206 were not retried.
    assert stats["duplicates"] == 0
    assert stats["accepted_events"] == len(expected)
    retried = total(pipeline.metrics.registry, "forwarder_events_retried_total", tier="0")
    assert 0 < retried < len(expected) / 2
    assert not await read_all(kafka, f"{topic}.dlq")


async def test_a_3004_receipt_dead_letters_the_event_as_rejected_without_walking_the_tiers(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=17, run_id=topic), 2_000)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    await set_faults(sandbox.url, receipts_fail_rate=0.05, receipts_code=3004)
    # Short tiers: were the 3004s retried, they would reach retries_exhausted within the test.
    pipeline = Pipeline(_tiered_config(kafka, topic, sandbox, "1"), REGISTRY)
    async with running(pipeline):

        async def finished() -> bool:
            accepted = (await sandbox_stats(sandbox.url))["accepted_events"]
            rejected = total(
                pipeline.metrics.registry, "forwarder_events_dead_lettered_total", reason="rejected"
            )
            return accepted + rejected >= len(expected)

        await wait_for(finished, 60, "every event accepted or dead-lettered")
    # The traffic's malformed events are dead-lettered too, by the decoder: only endpoint
    # answers carry a status.
    dead = [
        r
        for r in await read_all(kafka, f"{topic}.dlq")
        if "forwarder.error.status" in dict(r.headers)
    ]
    assert dead, "the sandbox failed about 5% of the receipts"
    for record in dead:
        headers = headers_of(record)
        reason = headers["forwarder.error.reason"]
        assert (reason, headers["forwarder.error.status"], headers["forwarder.error.code"]) == (
            "rejected",
            "400",
            "3004",
        )
    assert not await read_all(kafka, f"{topic}.retry.1"), "a 3004 is never parked"
    rejected = {uuid_of(orjson.loads(r.value)["event_id"]) for r in dead}
    accepted = set(await sandbox_uuids(sandbox.url))
    assert accepted | rejected == expected
    assert not accepted & rejected


async def test_wrong_token_pauses_then_resumes_after_the_fix(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    topic = f"pause-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 3)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await http.put("/_sandbox/auth", json={"tokens": ["1/1/some-other-token"]})
    sent = await produce(kafka, topic, TrafficGenerator(seed=16, run_id=topic), 2_000)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    port = free_port()
    process = ForwarderProcess(
        env_for(kafka, topic, sandbox.url, ops__port=port), tmp_path / "forwarder.log"
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as ops:

            async def readyz() -> tuple[int, str]:
                try:
                    response = await ops.get("/readyz")
                except httpx.HTTPError:
                    return 0, ""
                return response.status_code, response.text

            async def paused() -> bool:
                status, text = await readyz()
                return status == 503 and "paused" in text and "3001" in text

            await wait_for(paused, 60, "/readyz to report the pause")
            fixed_at = time.monotonic() + 20
            while time.monotonic() < fixed_at:
                assert (await readyz())[0] == 503
                assert (await sandbox_stats(sandbox.url))["accepted_events"] == 0
                await wait_for(paused, 5, "the pause to hold")
            assert not await read_all(kafka, f"{topic}.dlq")
            async with httpx.AsyncClient(base_url=sandbox.url) as http:
                await http.put("/_sandbox/auth", json={"tokens": ["1/1/sandbox-token"]})
            await _all_delivered(sandbox, expected, 90)

            async def ready() -> bool:
                return (await readyz())[0] == 200

            await wait_for(ready, 30, "/readyz to turn ready again")
        process.signal(signal.SIGTERM)
        assert await process.wait(60) == 0
    finally:
        process.ensure_dead()
    assert not await read_all(kafka, f"{topic}.dlq")
    log = process.output()
    assert log.count('"endpoint_paused"') <= 2  # logged once per interval, not per request
    assert "sandbox-key" not in log
