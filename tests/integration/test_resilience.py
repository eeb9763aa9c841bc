"""At least once through crashes, restarts and rebalances, with real child processes."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import (
    ForwarderProcess,
    env_for,
    read_all,
    sandbox_stats,
    sandbox_uuids,
    uuid_of,
    wait_delivered,
    wait_for,
)


async def test_kill_9_mid_run_then_restart_delivers_every_event(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 6)
    sent = await produce(kafka, topic, TrafficGenerator(seed=3, run_id=topic), 100_000)
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    env = env_for(kafka, topic, sandbox.url, batch__linger_ms=100)
    first = ForwarderProcess(env, tmp_path / "first.log")
    try:

        async def partly_delivered() -> bool:
            return (await sandbox_stats(sandbox.url))["accepted_events"] >= 30_000

        await wait_for(partly_delivered, 90, "a third of the events delivered")
        first.signal(signal.SIGKILL)
        assert await first.wait(10) == -signal.SIGKILL
    finally:
        first.ensure_dead()
    before = (await sandbox_stats(sandbox.url))["accepted_events"]
    assert before < len(expected), "the crash must happen mid-run"
    second = ForwarderProcess(env, tmp_path / "second.log")
    try:
        await wait_delivered(
            sandbox.url, len(expected), 180, "every event delivered after the restart"
        )
        second.signal(signal.SIGTERM)
        assert await second.wait(60) == 0
    finally:
        second.ensure_dead()
    uuids = await sandbox_uuids(sandbox.url)
    # Same uuid on every delivery: no uuid the first delivery did not have.
    assert set(uuids) == expected
    stats = await sandbox_stats(sandbox.url)
    print(f"delivered {len(expected)} events, {stats['duplicates']} redelivered after kill -9")
    assert not await read_all(kafka, f"{topic}.dlq")


async def test_two_instances_share_partitions_and_sigterm_loses_nothing(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    topic = f"pair-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 6)
    generator = TrafficGenerator(seed=5, run_id=topic)
    sent = await produce(kafka, topic, generator, 10_000)
    env = env_for(kafka, topic, sandbox.url, group=f"pair-{topic}", ops__log_level="info")
    one = ForwarderProcess(env, tmp_path / "one.log")
    two = ForwarderProcess(env, tmp_path / "two.log")
    try:

        async def both_assigned() -> bool:
            return all(
                '"partitions_assigned"' in p.output() and f"{topic}-" in _last_assignment(p)
                for p in (one, two)
            )

        await wait_for(both_assigned, 60, "both instances to own source partitions")
        mine = {
            tp
            for p in (one, two)
            for tp in _last_assignment(p).split(",")
            if tp.startswith(f"{topic}-")
        }
        assert len(mine) == 6
        one.signal(signal.SIGTERM)
        assert await one.wait(60) == 0
        assert "pipeline_stopped" in one.output()
        # Keep producing while only the second instance runs: it takes over every partition.
        sent += await produce(kafka, topic, generator, 10_000)
        expected = {uuid_of(g.event_id) for g in sent if g.event_id}
        await wait_delivered(
            sandbox.url, len(expected), 120, "every event delivered by the survivor"
        )
        assert set(await sandbox_uuids(sandbox.url)) == expected
        two.signal(signal.SIGTERM)
        assert await two.wait(60) == 0
    finally:
        one.ensure_dead()
        two.ensure_dead()


def _last_assignment(process: ForwarderProcess) -> str:
    import json

    latest = ""
    for line in process.output().splitlines():
        if '"partitions_assigned"' in line:
            latest = ",".join(json.loads(line)["partitions"])
    return latest
