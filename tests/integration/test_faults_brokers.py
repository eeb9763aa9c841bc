"""Fault suite: brokers die under a running forwarder (kill -9 of a leader and of the group
coordinator on three nodes; a lone node stopped and restarted) and nothing is lost.

Traffic is produced throughout at a steady rate with ``acks=all``; loss is counted by ``uuid``
at the sandbox against what the brokers acknowledged; a commit audit checks every second that
no committed offset runs ahead of delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from forwarder.adapters.kafka_publisher import KafkaPublisher
from forwarder.commands.traffic import TrafficGenerator
from forwarder.config import load_config
from forwarder.localkafka import KafkaCluster, create_topic
from forwarder.ports import PublishResult
from forwarder.sandbox import RunningSandbox

from .fault_support import (
    AckedTraffic,
    CommitAudit,
    Figures,
    coordinator,
    duplicate_bound,
    leaders,
    recovery_s,
    wait_all_committed,
    wait_in_sync,
)
from .support import ForwarderProcess, env_for, wait_for

pytestmark = pytest.mark.faults

RATE = 500  # events/s, produced throughout each scenario
PARTITIONS = 6
LEADER_DOWN_S = 20
NODE_STOPPED_S = 30


@pytest.fixture(autouse=True)
def _quiet_clients(caplog: pytest.LogCaptureFixture) -> None:
    """The test's own Kafka clients log every refused connection while a node is down: tens of
    thousands of lines that would bury a failure's message."""
    caplog.set_level(logging.CRITICAL, logger="aiokafka")


def _cluster(nodes: int) -> Iterator[KafkaCluster]:
    """A cluster of the test's own (384 MB heaps): it kills and stops nodes of it."""
    with KafkaCluster(nodes=nodes, heap_mb=384) as cluster:
        yield cluster


@pytest.fixture
def three_nodes() -> Iterator[KafkaCluster]:
    yield from _cluster(3)


@pytest.fixture
def lone_node() -> Iterator[KafkaCluster]:
    """Stopping the session's broker instead would hurt the tests that follow."""
    yield from _cluster(1)


async def _flowing(sandbox: RunningSandbox, count: int) -> None:
    counts = sandbox.sandbox.recorder.counts

    async def delivered() -> bool:
        return len(counts) >= count

    await wait_for(delivered, 90, f"{count} events delivered")


async def _hold(until: float) -> None:
    """Keep a fault in place until ``until`` (monotonic): the outage's length is the scenario."""
    await asyncio.sleep(max(0.0, until - time.monotonic()))


async def _finish(
    traffic: AckedTraffic,
    sandbox: RunningSandbox,
    forwarder: ForwarderProcess,
    kafka: str,
    group: str,
    topic: str,
) -> float:
    """Stop producing, wait for every acknowledged event and the final commit, then SIGTERM:
    returns the seconds from the end of traffic to the last event delivered."""
    await traffic.stop()
    stopped = time.monotonic()
    catch_up = await recovery_s(traffic, sandbox, stopped, 120, "every acknowledged event")
    await wait_all_committed(kafka, group, topic, PARTITIONS, 60)
    forwarder.signal(signal.SIGTERM)
    assert await forwarder.wait(60) == 0, forwarder.output()[-3000:]
    return catch_up


def _figures(name: str, traffic: AckedTraffic, sandbox: RunningSandbox, **notes: object) -> Figures:
    counts = sandbox.sandbox.recorder.counts
    foreign = [u for u in counts if u not in traffic.sent]
    assert not foreign, f"{len(foreign)} delivered uuids were never produced, e.g. {foreign[0]}"
    return Figures.of(
        name, set(traffic.acked), sandbox, **notes, **{"unacknowledged sends": traffic.failed}
    )


def _check(figures: Figures, audit: CommitAudit, sandbox: RunningSandbox, windows: int) -> None:
    """No loss, no commit ahead of delivery, duplicates within what ``windows`` re-reads explain."""
    bound, reckoned = duplicate_bound(windows, sandbox)
    figures.notes["commits audited"] = audit.samples
    figures.report()
    assert figures.lost == 0, f"lost events: {figures}"
    assert not audit.wrong, f"a commit ran ahead of delivery: {audit}; {figures}"
    assert audit.samples >= 5, f"too few commit samples to trust: {audit}"
    assert figures.duplicated <= bound, f"duplicates over {reckoned}: {figures}"


@contextlib.asynccontextmanager
async def _running(
    kafka: str, topic: str, sandbox: RunningSandbox, log: Path, seed: int
) -> AsyncIterator[tuple[AckedTraffic, CommitAudit, ForwarderProcess]]:
    """Traffic at RATE, one forwarder delivering it, the commit audit running; everything is
    stopped on the way out."""
    traffic = AckedTraffic(kafka, topic, TrafficGenerator(seed=seed, run_id=topic), RATE)
    audit = CommitAudit(kafka, f"g-{topic}", topic, traffic.located, sandbox)
    await traffic.start()
    forwarder = ForwarderProcess(env_for(kafka, topic, sandbox.url, group=f"g-{topic}"), log)
    try:
        await _flowing(sandbox, 2000)
        audit.start()
        yield traffic, audit, forwarder
    finally:
        await audit.stop()
        await traffic.stop()
        forwarder.ensure_dead()


async def test_kill_9_of_the_busiest_leader_then_of_the_group_coordinator_loses_nothing(
    three_nodes: KafkaCluster, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    kafka = three_nodes.bootstrap_servers
    topic = f"k9-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    await create_topic(
        kafka, topic, PARTITIONS, replication=3, configs={"min.insync.replicas": "2"}
    )
    recovery: dict[str, float] = {}
    async with _running(kafka, topic, sandbox, tmp_path / "f.log", 161) as (
        traffic,
        audit,
        forwarder,
    ):
        owners = Counter((await leaders(kafka, topic)).values())
        busiest, led = owners.most_common(1)[0]
        killed_at = time.monotonic()
        three_nodes.kill_node(busiest - 1)
        recovery["leader kill -9"] = await recovery_s(
            traffic, sandbox, killed_at, 90, f"catch-up after killing node {busiest}"
        )
        await _hold(killed_at + LEADER_DOWN_S)
        await asyncio.to_thread(three_nodes.start_node, busiest - 1)
        back_at = time.monotonic()
        await wait_in_sync(kafka, [topic, "__consumer_offsets"], 3, 90)
        recovery["leader back in sync"] = time.monotonic() - back_at

        node = await coordinator(kafka, group)
        killed_at = time.monotonic()
        three_nodes.kill_node(node - 1)
        recovery["coordinator kill -9"] = await recovery_s(
            traffic, sandbox, killed_at, 90, f"catch-up after killing coordinator {node}"
        )
        await _flowing(sandbox, len(sandbox.sandbox.recorder.counts) + 4 * RATE)
        await _finish(traffic, sandbox, forwarder, kafka, group, topic)
    figures = _figures(
        f"kill -9 leader of {led}/{PARTITIONS} partitions (node {busiest}, down "
        f"{LEADER_DOWN_S} s), then coordinator (node {node})",
        traffic,
        sandbox,
    )
    figures.recovery_s = recovery
    _check(figures, audit, sandbox, windows=2)


async def test_a_lone_node_stopped_30_s_and_restarted_on_its_data_recovers_by_itself(
    lone_node: KafkaCluster, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    kafka = lone_node.bootstrap_servers
    topic = f"stop-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    await create_topic(kafka, topic, PARTITIONS)
    recovery: dict[str, float] = {}
    async with _running(kafka, topic, sandbox, tmp_path / "f.log", 162) as (
        traffic,
        audit,
        forwarder,
    ):
        stopped_at = time.monotonic()
        await asyncio.to_thread(lone_node.stop_node, 0)
        await _hold(stopped_at + NODE_STOPPED_S)
        await asyncio.to_thread(lone_node.start_node, 0)  # same data directory and port
        back_at = time.monotonic()
        recovery["node back"] = await recovery_s(
            traffic, sandbox, back_at, 120, "catch-up after the node came back"
        )
        await _flowing(sandbox, len(sandbox.sandbox.recorder.counts) + 4 * RATE)
        await _finish(traffic, sandbox, forwarder, kafka, group, topic)
    figures = _figures(
        f"lone node stopped {NODE_STOPPED_S} s, restarted on its data",
        traffic,
        sandbox,
    )
    figures.recovery_s = recovery
    _check(figures, audit, sandbox, windows=1)


async def test_the_retry_producer_comes_back_after_its_batches_expire_while_a_partition_is_offline(
    three_nodes: KafkaCluster,
) -> None:
    """aiokafka expires a batch that waited ``request_timeout_ms`` for an offline partition but
    keeps its sequence number; when the leader is back, the broker refuses the next batch as
    OutOfOrderSequenceNumber and that producer can send nothing more. The publisher must
    replace it and let the caller's retry write the records."""
    bootstrap = three_nodes.bootstrap_servers
    topic = f"pub-{uuid.uuid4().hex[:8]}"
    # One replica, so stopping its node leaves the partition without a leader.
    await create_topic(bootstrap, topic, 1)
    (leader,) = (await leaders(bootstrap, topic)).values()
    config = load_config(
        None, {"FORWARDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap}, need_secrets=False
    )
    publisher = KafkaPublisher(config.kafka, request_timeout_ms=3_000)
    await publisher.start()
    try:
        assert (await publisher.publish(topic, b"k", b"before", [])).acknowledged
        await asyncio.to_thread(three_nodes.stop_node, leader - 1)
        pending = asyncio.gather(
            *(publisher.publish(topic, b"k", f"during-{i}".encode(), []) for i in range(3))
        )
        await asyncio.sleep(8)  # past the request timeout, so the pending batches expire
        await asyncio.to_thread(three_nodes.start_node, leader - 1)
        back = time.monotonic()
        during = await asyncio.wait_for(pending, 60)
        results: list[PublishResult] = []
        while time.monotonic() - back < 60:
            results.append(await publisher.publish(topic, b"k", b"after", []))
            if results[-1].acknowledged:
                break
            assert results[-1].retriable, results[-1]
            await asyncio.sleep(0.5)
        errors = sorted({r.error for r in [*during, *results] if not r.acknowledged})
        assert results and results[-1].acknowledged, (
            f"no write acknowledged in 60 s after the leader came back: {errors}"
        )
        print(f"writes resumed {time.monotonic() - back:.1f}s after the restart; errors {errors}")
    finally:
        await publisher.stop()
