"""Fault suite: a rebalance storm. Up to three ``forwarder run`` processes in one group over 12
partitions are started and stopped every few seconds, SIGTERM and kill -9 mixed, while they
forward 100,000 events produced meanwhile; nothing is lost, no commit runs ahead of delivery, and the duplicates stay
within what the kills and the rebalances can explain."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from pathlib import Path

import pytest

from forwarder.commands.traffic import TrafficGenerator
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .fault_support import (
    AckedTraffic,
    CommitAudit,
    Figures,
    duplicate_bound,
    wait_all_committed,
)
from .support import ForwarderProcess, env_for, wait_for

pytestmark = pytest.mark.faults

EVENTS = 100_000
RATE = 2500  # events/s: the run lasts 40 s
PARTITIONS = 12
MEMBERS = 3
STEP_S = 3.0  # a start or a stop every STEP_S
SHUTDOWN_TIMEOUT_S = 10


async def test_a_rebalance_storm_of_three_processes_loses_nothing(
    kafka: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    topic = f"storm-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    await create_topic(kafka, topic, PARTITIONS)
    traffic = AckedTraffic(kafka, topic, TrafficGenerator(seed=163, run_id=topic), RATE, EVENTS)
    counts = sandbox.sandbox.recorder.counts
    env = env_for(
        kafka, topic, sandbox.url, group=group, ops__shutdown_timeout_s=SHUTDOWN_TIMEOUT_S
    )
    rng = random.Random(163)
    live: list[ForwarderProcess] = []
    stopping: list[tuple[ForwarderProcess, int, asyncio.Task[int]]] = []
    started = kills = terms = 0
    audit = CommitAudit(kafka, group, topic, traffic.located, sandbox)

    def start() -> None:
        nonlocal started
        started += 1
        live.append(ForwarderProcess(env, tmp_path / f"member-{started}.log"))

    await traffic.start()
    began = time.monotonic()
    try:
        for _ in range(MEMBERS):
            start()
        audit.start()
        # The storm: every STEP_S one member more or one less, as long as events are produced.
        while traffic.producing:
            await asyncio.sleep(STEP_S)
            if len(live) < MEMBERS and (not live or rng.random() < 0.5):
                start()
                continue
            victim = live.pop(rng.randrange(len(live)))
            # SIGTERM only once the handlers are in (before, Python's default is to die).
            graceful = rng.random() < 0.5 and '"pipeline_started"' in victim.output()
            how = signal.SIGTERM if graceful else signal.SIGKILL
            if graceful:
                terms += 1
            else:
                kills += 1
            victim.signal(how)
            stopping.append(
                (victim, how, asyncio.create_task(victim.wait(SHUTDOWN_TIMEOUT_S + 20)))
            )
        storm_s = time.monotonic() - began
        await traffic.stop()
        expected = set(traffic.acked)
        if not live:
            start()
        calm_at = time.monotonic()

        async def all_delivered() -> bool:
            return all(u in counts for u in expected)

        await wait_for(all_delivered, 120, "every event after the storm")
        recover_s = time.monotonic() - calm_at
        await wait_all_committed(kafka, group, topic, PARTITIONS, 60)

        async def handlers_in() -> bool:
            return all('"pipeline_started"' in p.output() for p in live)

        await wait_for(handlers_in, 60, "the last members started")
        for process in live:
            process.signal(signal.SIGTERM)
            stopping.append((process, signal.SIGTERM, asyncio.create_task(process.wait(60))))
        exits = [(how, await task, p) for p, how, task in stopping]
    finally:
        await audit.stop()
        await traffic.stop()
        for process in live:
            process.ensure_dead()
        for process, _, task in stopping:
            task.cancel()
            process.ensure_dead()
    bad_exits = [
        f"{p.log_path.name}: {signal.Signals(how).name} -> {code}"
        for how, code, p in exits
        if code != (0 if how == signal.SIGTERM else -signal.SIGKILL)
    ]
    assert not bad_exits, f"unexpected exits: {bad_exits}"
    # Each membership change can force one re-read.
    bound, reckoned = duplicate_bound(started + terms + kills, sandbox)
    figures = Figures.of(
        f"rebalance storm: {MEMBERS} processes, {PARTITIONS} partitions",
        expected,
        sandbox,
        **{
            "starts": started,
            "SIGTERMs": terms,
            "kill -9s": kills,
            "storm": f"{storm_s:.0f} s",
            "commits audited": audit.samples,
        },
    )
    figures.recovery_s = {"after the last change": recover_s}
    figures.report()
    assert figures.lost == 0, f"lost events: {figures}"
    assert not audit.wrong, f"a commit ran ahead of delivery: {audit}; {figures}"
    assert kills and terms and started > MEMBERS, f"not a storm: {figures}"
    assert len(expected) == EVENTS, f"{traffic.failed} sends failed: {dict(traffic.errors)}"
    assert figures.duplicated <= bound, f"duplicates over {reckoned}: {figures}"
