"""The forwarder when Kafka itself goes away (issue 12 items 4 and 9), with a broker of its own.

The broker is stopped while events are in flight: ``/readyz`` turns 503 naming the producer,
SIGTERM is noticed at once and the process exits 0 within ``ops.shutdown_timeout_s`` although
every commit and the group leave wait on a coordinator that is gone; after the broker is back,
no committed offset is past an event that was not delivered or dead-lettered.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import orjson

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.core.headers import origin_of
from forwarder.localkafka import KafkaCluster, create_topic, free_port
from forwarder.sandbox import RunningSandbox

from .support import (
    ForwarderProcess,
    env_for,
    read_all,
    sandbox_stats,
    sandbox_uuids,
    uuid_of,
    wait_for,
)

SHUTDOWN_TIMEOUT_S = 10.0


async def _readyz(port: int) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{port}/readyz")
        return response.status_code, response.text


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets per partition of ``topic`` (0 where none)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    result = dict.fromkeys(range(3), 0)
    result.update({tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic})
    return result


async def test_broker_stopped_then_sigterm_exits_0_in_time_and_commits_nothing_wrongly(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    cluster = KafkaCluster(nodes=1)
    await asyncio.to_thread(cluster.start)
    forwarder: ForwarderProcess | None = None
    try:
        kafka = cluster.bootstrap_servers
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        group = f"g-{topic}"
        await create_topic(kafka, topic, 3)
        await produce(kafka, topic, TrafficGenerator(seed=11, run_id=topic), 20_000)
        port = free_port()
        env = env_for(
            kafka,
            topic,
            sandbox.url,
            group=group,
            ops__port=port,
            ops__shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
            batch__max_events=50,
        )
        forwarder = ForwarderProcess(env, tmp_path / "forwarder.log")

        async def ready() -> bool:
            try:
                return (await _readyz(port))[0] == 200
            except httpx.HTTPError:
                return False

        async def some_delivered() -> bool:
            return (await sandbox_stats(sandbox.url))["accepted_events"] >= 500

        await wait_for(ready, 60, "/readyz 200")
        await wait_for(some_delivered, 60, "500 events delivered")
        committed: dict[int, int] = {}

        async def read_committed() -> bool:
            committed.update(await _committed(kafka, group, topic))
            return sum(committed.values()) > 0

        async with httpx.AsyncClient(base_url=sandbox.url) as http:  # keep events in flight
            (await http.put("/_sandbox/faults", json={"latency_ms": 1500})).raise_for_status()
        await wait_for(read_committed, 30, "a first commit")
        await asyncio.to_thread(cluster.stop_node, 0)

        async def producer_unready() -> bool:
            status, text = await _readyz(port)
            return status == 503 and "producer" in text

        await wait_for(producer_unready, 30, "/readyz 503 naming the producer")
        print("readyz while the broker is down:", (await _readyz(port))[1].strip())
        started = time.monotonic()
        forwarder.signal(signal.SIGTERM)
        code = await forwarder.wait(SHUTDOWN_TIMEOUT_S + 20)
        took = time.monotonic() - started
        print(f"exit {code} {took:.1f}s after SIGTERM with the broker down")
        assert code == 0, forwarder.output()[-3000:]
        assert took <= SHUTDOWN_TIMEOUT_S + 1.0, forwarder.output()[-3000:]
        output = forwarder.output()
        assert '"pipeline_stopped"' in output

        await asyncio.to_thread(cluster.start_node, 0)
        await wait_for(read_committed, 60, "the group's offsets readable after the restart")
        delivered = set(await sandbox_uuids(sandbox.url))
        origins = [origin_of(r) for r in await read_all(kafka, f"{topic}.dlq")]
        dead = {(o.topic, o.partition, o.offset) for o in origins}
        for record in await read_all(kafka, topic):
            if record.offset >= committed[record.partition]:
                continue
            event_id = _event_id(record.value)
            done = (event_id is not None and uuid_of(event_id) in delivered) or (
                (record.topic, record.partition, record.offset) in dead
            )
            assert done, f"offset {record.offset} of partition {record.partition} committed unsent"
        print("committed before the outage:", committed)
    finally:
        if forwarder is not None:
            forwarder.ensure_dead()
        await asyncio.to_thread(cluster.stop)


def _event_id(value: bytes | None) -> str | None:
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return event.get("event_id") if isinstance(event, dict) else None
