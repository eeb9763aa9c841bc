"""`forwarder dlq stats` and `forwarder dlq replay` against a real broker and the sandbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.core.headers import Failure, dead_letter_headers
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .support import (
    REGISTRY,
    config_for,
    headers_of,
    read_all,
    running,
    sandbox_uuids,
    uuid_of,
    wait_for,
)


def _cli_env(kafka: str, topic: str) -> dict[str, str]:
    return {
        **os.environ,
        "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": kafka,
        "FORWARDER_KAFKA__TOPICS": topic,
        "FORWARDER_KAFKA__GROUP_ID": f"g-{topic}",
    }


def _start(kafka: str, topic: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "forwarder", "dlq", *args],
        env=_cli_env(kafka, topic),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _cli(kafka: str, topic: str, *args: str, expect: int = 0) -> Any:
    process = _start(kafka, topic, *args)
    out, err = await asyncio.to_thread(process.communicate, timeout=120)
    assert process.returncode == expect, err.decode()
    return orjson.loads(out) if "--json" in args else out.decode() + err.decode()


@dataclass
class Rec:
    value: bytes
    topic: str
    offset: int
    partition: int = 0
    timestamp: int = 1_700_000_000_000
    key: bytes | None = b"k"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


async def _write_dead_letters(
    kafka: str, dlq: str, rows: list[tuple[bytes, Failure, str, float]]
) -> None:
    """Dead letters as the forwarder writes them: (value, failure, destination, failed_at)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=20)
    await producer.start()
    try:
        source = dlq.removesuffix(".dlq")
        futures = []
        for index, (value, failure, destination, failed_at) in enumerate(rows):
            headers = dead_letter_headers(
                Rec(value, source, index),
                failure,
                attempts=1,
                destination=destination,
                now=failed_at,
            )
            futures.append(await producer.send(dlq, value=value, key=b"k", headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _event(generator: TrafficGenerator) -> bytes:
    return orjson.dumps(generator.valid())


async def test_incident_story_404_then_replay_by_status_delivers_exactly_those(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await http.put("/_sandbox/faults", json={"reject_destinations": ["clickstream.purchase"]})
    sent = await produce(
        kafka, topic, TrafficGenerator(seed=21, bad_ratio=0.03, run_id=topic), 2_000
    )
    purchases = {
        g.value for g in sent if g.event_id and orjson.loads(g.value)["event_type"] == "purchase"
    }
    bad = [g for g in sent if g.bad]
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    assert purchases
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url, retry__tiers=""), REGISTRY)
    async with running(pipeline):

        async def piled_up() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) >= len(purchases) + len(bad)

        await wait_for(piled_up, 60, "the 404s and the bad events in the DLQ")
        report = await _cli(kafka, topic, "stats", "--json")
        groups = report[f"{topic}.dlq"]["groups"]
        not_found = [g for g in groups if g["status"] == 404]
        assert len(not_found) == 1
        assert not_found[0]["reason"] == "rejected"
        assert not_found[0]["destination"] == "clickstream.purchase"
        assert not_found[0]["count"] == len(purchases)
        assert not_found[0]["samples"] and not_found[0]["oldest_failed_at"]
        assert sum(g["count"] for g in groups) == len(purchases) + len(bad)
        table = await _cli(kafka, topic, "stats")
        assert "clickstream.purchase" in table
        # The incident is fixed; the operator replays the 404s, and only them.
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            await http.put("/_sandbox/faults", json={"reject_destinations": []})
        summary = await _cli(kafka, topic, "replay", "--status", "404", "--json")
        assert summary["replayed"] == summary["selected"] == len(purchases)

        async def all_there() -> bool:
            return set(await sandbox_uuids(sandbox.url)) >= expected

        await wait_for(all_there, 60, "every purchase delivered after the replay")
    assert set(await sandbox_uuids(sandbox.url)) == expected
    source = await read_all(kafka, topic)
    replayed = [r for r in source if "forwarder.replayed_from" in headers_of(r)]
    assert sorted(r.value for r in replayed) == sorted(purchases)
    assert all(headers_of(r)["forwarder.replay_count"] == "1" for r in replayed)
    # A second run has nothing left to replay: progress was committed.
    again = await _cli(kafka, topic, "replay", "--status", "404", "--json")
    assert again["replayed"] == 0


async def test_filters_dry_run_limit_and_revalidate(kafka: str) -> None:
    topic = f"f-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1)
    await create_topic(kafka, f"{topic}.dlq", 1)
    await create_topic(kafka, "replay-target-" + topic, 1)
    generator = TrafficGenerator(seed=22, run_id=topic)
    early, late = 1_700_000_000.0, 1_800_000_000.0
    rows = (
        [
            (_event(generator), Failure("rejected", "HTTP 404", 404), "db_a.t_one", early)
            for _ in range(5)
        ]
        + [
            (
                _event(generator),
                Failure("rejected", "HTTP 400 code 3004", 400, 3004),
                "db_a.t_two",
                early,
            )
            for _ in range(4)
        ]
        + [
            (
                _event(generator),
                Failure("rejected", "HTTP 400 code 3004", 400, 3004),
                "db_b.t_two",
                late,
            )
            for _ in range(3)
        ]
        + [
            (
                b'{"event_type": "search"}',
                Failure("retries_exhausted", "HTTP 503", 503),
                "db_a.t_one",
                late,
            )
        ]
        * 2
        + [
            (_event(generator), Failure("retries_exhausted", "HTTP 503", 503), "db_a.t_one", late)
            for _ in range(2)
        ]
    )
    await _write_dead_letters(kafka, f"{topic}.dlq", rows)
    target = "replay-target-" + topic
    dry = await _cli(
        kafka, topic, "replay", "--reason", "rejected", "--code", "3004", "--dry-run", "--json"
    )
    assert (dry["selected"], dry["replayed"]) == (7, 0)
    assert {g["destination"]: g["count"] for g in dry["would_replay"]["groups"]} == {
        "db_a.t_two": 4,
        "db_b.t_two": 3,
    }
    assert not await read_all(kafka, topic)
    combined = await _cli(
        kafka,
        topic,
        "replay",
        "--code",
        "3004",
        "--destination",
        "db_a.t_two",
        "--to",
        target,
        "--group",
        "g1",
        "--json",
    )
    assert combined["replayed"] == 4
    since = await _cli(
        kafka,
        topic,
        "replay",
        "--reason",
        "rejected",
        "--since",
        "2026-01-01T00:00:00Z",
        "--to",
        target,
        "--group",
        "g2",
        "--json",
    )
    assert since["replayed"] == 3
    limited = await _cli(
        kafka,
        topic,
        "replay",
        "--status",
        "404",
        "--limit",
        "2",
        "--to",
        target,
        "--group",
        "g3",
        "--json",
    )
    assert limited["replayed"] == 2
    checked = await _cli(
        kafka,
        topic,
        "replay",
        "--reason",
        "retries_exhausted",
        "--revalidate",
        "--to",
        target,
        "--group",
        "g4",
        "--json",
    )
    assert checked["replayed"] == 2
    assert checked["skipped"] == {"would_fail_validation": 2}
    assert len(await read_all(kafka, target)) == 4 + 3 + 2 + 2
    until = await _cli(
        kafka, topic, "replay", "--until", "2000-01-01", "--dry-run", "--group", "g5", "--json"
    )
    assert until["selected"] == 0
    errors = await _cli(kafka, topic, "replay", "--topic", "no-such-topic.dlq", expect=2)
    assert "does not exist" in errors


async def test_the_readme_sequence_with_the_default_group_replays_each_selection(
    kafka: str,
) -> None:
    """The three replay commands of docs/operations.md in order, no ``--group``: each selection
    has its own progress."""
    topic = f"s-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1)
    await create_topic(kafka, f"{topic}.dlq", 2)
    generator = TrafficGenerator(seed=25, run_id=topic)
    now = time.time()
    invalid = b'{"event_type": "page_view"}'  # still rejected by the bundled schemas
    schema = Failure("schema_violation", "$.user_id: required")
    rows = (
        [(_event(generator), Failure("rejected", "HTTP 404", 404), "db.t", now) for _ in range(6)]
        + [(_event(generator), schema, "", now) for _ in range(4)]  # valid under the fix
        + [(invalid, schema, "", now) for _ in range(3)]
    )
    await _write_dead_letters(kafka, f"{topic}.dlq", rows)
    dry = await _cli(kafka, topic, "replay", "--status", "404", "--dry-run", "--json")
    assert (dry["selected"], dry["replayed"]) == (6, 0)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    first = await _cli(kafka, topic, "replay", "--status", "404", "--since", since, "--json")
    assert first["replayed"] == 6
    checked = await _cli(
        kafka, topic, "replay", "--reason", "schema_violation", "--revalidate", "--json"
    )
    assert (checked["selected"], checked["replayed"]) == (7, 4), "a selection of its own"
    assert checked["skipped"] == {"would_fail_validation": 3}
    # Each selection resumes where it stopped: run again, nothing new.
    again = await _cli(kafka, topic, "replay", "--status", "404", "--since", since, "--json")
    assert again["replayed"] == 0
    rechecked = await _cli(
        kafka, topic, "replay", "--reason", "schema_violation", "--revalidate", "--json"
    )
    assert rechecked["replayed"] == 0
    # The skipped ones were not taken as done: a run with other filters still finds them.
    forced = await _cli(kafka, topic, "replay", "--reason", "schema_violation", "--json")
    assert forced["replayed"] == 7
    values = sorted(r.value for r in await read_all(kafka, topic))
    assert values == sorted([v for v, *_ in rows[:10]] + [v for v, *_ in rows[6:]]), (
        "the 404s once, the valid schema violations twice (both runs), the invalid once"
    )


async def test_replay_is_bounded_by_the_end_offsets_seen_at_start(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await http.put("/_sandbox/faults", json={"reject_destinations": ["clickstream.search"]})
    generator = TrafficGenerator(seed=23, run_id=topic)
    searches = []
    while len(searches) < 40:
        event = generator.valid()
        if event["event_type"] == "search":
            searches.append(orjson.dumps(event))
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for value in searches:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url, retry__tiers=""), REGISTRY)
    async with running(pipeline):

        async def dead() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) >= 40

        await wait_for(dead, 60, "40 dead letters")
        # Still broken: every replayed event fails again and lands back in the DLQ mid-run.
        summary = await _cli(kafka, topic, "replay", "--status", "404", "--rate", "20", "--json")
        assert summary["replayed"] == 40

        async def back() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) >= 80

        await wait_for(back, 60, "the replayed events dead-lettered again")
    replayed = [
        r for r in await read_all(kafka, topic) if "forwarder.replayed_from" in headers_of(r)
    ]
    assert len(replayed) == 40
    again = [
        r
        for r in await read_all(kafka, f"{topic}.dlq")
        if headers_of(r).get("forwarder.replay_count") == "1"
    ]
    assert len(again) == 40


async def test_kill_9_mid_replay_then_rerun_misses_nothing(kafka: str) -> None:
    topic = f"k-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, 1)
    await create_topic(kafka, f"{topic}.dlq", 3)
    target = f"{topic}-target"
    await create_topic(kafka, target, 3)
    generator = TrafficGenerator(seed=24, run_id=topic)
    rows = [
        (_event(generator), Failure("rejected", "HTTP 404", 404), "db.t", time.time())
        for _ in range(20_000)
    ]
    await _write_dead_letters(kafka, f"{topic}.dlq", rows)
    first = _start(kafka, topic, "replay", "--to", target, "--rate", "4000", "--json")
    try:

        async def partway() -> bool:
            assert first.poll() is None, "the replay ended before it could be killed"
            return len(await read_all(kafka, target)) >= 5_000

        await wait_for(partway, 60, "a quarter of the replay", every=0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert len(await read_all(kafka, target)) < 20_000
    summary = await _cli(kafka, topic, "replay", "--to", target, "--json")
    assert summary["failed"] == 0
    replayed = await read_all(kafka, target)
    coordinates = {headers_of(r)["forwarder.replayed_from"] for r in replayed}
    assert len(coordinates) == 20_000
    assert {r.value for r in replayed} == {value for value, *_ in rows}
    print(f"replayed 20000 records; {len(replayed) - 20_000} replayed twice across the kill")
