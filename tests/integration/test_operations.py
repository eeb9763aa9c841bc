"""Operations: the metrics scraped from the ops port follow the work, checked against the sandbox."""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from forwarder.commands.traffic import Generated, TrafficGenerator, produce
from forwarder.localkafka import free_port
from forwarder.sandbox import RunningSandbox
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

from .support import ForwarderProcess, env_for, read_all, sandbox_stats, wait_for

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


async def _scrape(ops: httpx.AsyncClient) -> tuple[Samples, str]:
    response = await ops.get("/metrics")
    assert response.status_code == 200
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name][frozenset(sample.labels.items())] = sample.value
    return samples, response.text


def _sum(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if wanted <= k)


async def test_scraped_metrics_move_with_the_work_and_match_the_sandbox(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    port = free_port()
    env = env_for(kafka, topic, sandbox.url, ops__port=port, kafka__commit_interval_ms=200)
    process = ForwarderProcess(env, tmp_path / "forwarder.log")
    generator = TrafficGenerator(seed=21, bad_ratio=0.05, run_id=topic)
    sent: list[Generated] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as ops:
            for round_size in (2_000, 3_000):
                sent += await produce(kafka, topic, generator, round_size)
                valid = sum(1 for g in sent if g.event_id)
                bad = len(sent) - valid

                async def caught_up(valid: int = valid, bad: int = bad) -> bool:
                    try:
                        samples, _ = await _scrape(ops)
                    except httpx.HTTPError:
                        return False
                    return (
                        _sum(samples, "forwarder_events_forwarded_total") >= valid
                        and _sum(samples, "forwarder_events_dead_lettered_total") >= bad
                    )

                await wait_for(caught_up, 60, f"the metrics to count {len(sent)} events")
                stats = await sandbox_stats(sandbox.url)
                samples, text = await _scrape(ops)
                # The counters agree with what the destination itself counted, round after round.
                assert _sum(samples, "forwarder_events_forwarded_total") == stats["accepted_events"]
                assert stats["accepted_events"] == valid
                assert _sum(samples, "forwarder_events_consumed_total", topic=topic) == len(sent)
                assert _sum(samples, "forwarder_events_dead_lettered_total") == bad
                assert (
                    _sum(samples, "forwarder_http_requests_total", status="204")
                    == stats["accepted_requests"]
                )
                assert (
                    _sum(samples, "forwarder_batch_size_events_count") == stats["accepted_requests"]
                )
                assert _sum(samples, "forwarder_batch_size_events_sum") == valid
                assert (
                    _sum(samples, "forwarder_http_request_duration_seconds_count")
                    >= (stats["accepted_requests"])
                )
                assert _sum(samples, "forwarder_paused") == 0
                assert DEV_API_KEY not in text and DEV_TOKEN not in text

            async def settled() -> bool:
                samples, _ = await _scrape(ops)
                lag = samples.get("forwarder_consumer_lag_records", {})
                return (
                    len([k for k in lag if ("topic", topic) in k]) == 3
                    and _sum(samples, "forwarder_consumer_lag_records", topic=topic) == 0
                    and _sum(samples, "forwarder_oldest_uncommitted_record_age_seconds") == 0
                    and _sum(samples, "forwarder_commit_duration_seconds_count") > 0
                )

            await wait_for(settled, 30, "lag 0 on every partition and nothing pending")
            assert (await ops.get("/healthz")).status_code == 200
            assert (await ops.get("/readyz")).status_code == 200
        process.signal(signal.SIGTERM)
        assert await process.wait(60) == 0
    finally:
        process.ensure_dead()
    assert len(await read_all(kafka, f"{topic}.dlq")) == sum(1 for g in sent if g.bad)


async def test_lag_age_and_in_flight_show_a_slow_endpoint_even_on_paused_partitions(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await http.put("/_sandbox/faults", json={"latency_ms": 3000})
    port = free_port()
    env = env_for(
        kafka,
        topic,
        sandbox.url,
        ops__port=port,
        kafka__commit_interval_ms=200,
        kafka__max_pending_per_partition=100,
        limits__max_in_flight=1,
        batch__max_events=50,
    )
    process = ForwarderProcess(env, tmp_path / "forwarder.log")
    try:
        await produce(kafka, topic, TrafficGenerator(seed=22, run_id=topic), 3_000)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as ops:

            async def behind() -> bool:
                try:
                    samples, _ = await _scrape(ops)
                except httpx.HTTPError:
                    return False
                return (
                    _sum(samples, "forwarder_consumer_lag_records", topic=topic) > 1_000
                    and _sum(samples, "forwarder_oldest_uncommitted_record_age_seconds") > 1
                    and _sum(samples, "forwarder_http_requests_in_flight") == 1
                )

            await wait_for(behind, 60, "lag, oldest age and in-flight to show the slow endpoint")
            # Every partition is paused now (backpressure at 100 pending): no fetch responses
            # come for them, yet records written meanwhile must show in the lag.
            samples, _ = await _scrape(ops)
            before = _sum(samples, "forwarder_consumer_lag_records", topic=topic)
            await produce(kafka, topic, TrafficGenerator(seed=23, run_id=topic), 3_000)

            async def grew() -> bool:
                samples, _ = await _scrape(ops)
                return (
                    _sum(samples, "forwarder_consumer_lag_records", topic=topic) >= before + 2_500
                )

            await wait_for(grew, 30, "the lag of paused partitions to count the new records")
        process.signal(signal.SIGTERM)
        assert await process.wait(60) == 0
    finally:
        process.ensure_dead()
