"""An endpoint outage longer than the whole retry schedule ends in a catch-up, not dead letters.

The schedule is shortened (two quick tries in process, then tiers of 1, 2 and 3 s: about 6 s in
all) and the outage lasts 30 s, five times as long. Before endpoint health, this set-up
dead-lettered all 2,000 events as ``retries_exhausted`` and delivered none.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from forwarder.commands.traffic import Generated, TrafficGenerator, produce
from forwarder.localkafka import create_topic, free_port
from forwarder.sandbox import RunningSandbox, SandboxConfig, start_sandbox

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

EVENTS = 2_000
OUTAGE_S = 30.0
CATCH_UP_BOUND_S = 30.0


@pytest.fixture
async def outage_topic(kafka: str) -> str:
    import uuid

    name = f"outage-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, name, 3)
    return name


def _env(kafka: str, topic: str, url: str, ops_port: int) -> dict[str, str]:
    return env_for(
        kafka,
        topic,
        url,
        ops__port=ops_port,
        retry__attempts=2,
        retry__backoff_initial_ms=10,
        retry__backoff_max_ms=20,
        retry__tiers="1,2,3",
        endpoint__timeout_s=2,
    )


class _Ops:
    def __init__(self, port: int) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)

    async def readyz(self) -> tuple[int, str]:
        try:
            response = await self.http.get("/readyz")
        except httpx.HTTPError:
            return 0, ""
        return response.status_code, response.text


async def _outage_then_recovery(
    kafka: str, topic: str, url: str, log: Path, heal: Callable[[], Awaitable[None]]
) -> str:
    """Run a forwarder through the outage, heal, check the catch-up; returns its log."""
    sent = await produce(kafka, topic, TrafficGenerator(seed=31, run_id=topic), EVENTS)
    ops_port = free_port()
    process = ForwarderProcess(_env(kafka, topic, url, ops_port), log)
    try:
        await _through(kafka, topic, url, _Ops(ops_port), sent, heal)
        process.signal(signal.SIGTERM)
        assert await process.wait(60) == 0, process.output()[-3000:]
    finally:
        process.ensure_dead()
    return process.output()


async def _through(
    kafka: str,
    topic: str,
    url: str,
    ops: _Ops,
    sent: list[Generated],
    heal: Callable[[], Awaitable[None]],
) -> None:
    started = time.monotonic()

    async def down() -> bool:
        status, text = await ops.readyz()
        return status == 503 and "endpoint down" in text

    await wait_for(down, 60, "/readyz to say the endpoint is down")
    status, text = await ops.readyz()
    while time.monotonic() - started < OUTAGE_S:
        status, text = await ops.readyz()
        assert status == 503, f"ready during the outage: {text}"
        assert not await read_all(kafka, f"{topic}.dlq"), "dead letters during the outage"
        await wait_for(down, 5, "the endpoint to stay down")
    assert "probing" in text, text
    await heal()
    healed = time.monotonic()
    expected = {uuid_of(g.event_id) for g in sent if g.event_id}
    await wait_delivered(url, len(expected), CATCH_UP_BOUND_S, f"{len(expected)} events")
    caught_up = time.monotonic() - healed
    assert set(await sandbox_uuids(url)) == expected

    async def ready() -> bool:
        return (await ops.readyz())[0] == 200

    await wait_for(ready, 30, "/readyz to turn ready after the outage")
    await ops.http.aclose()
    dead = await read_all(kafka, f"{topic}.dlq")
    assert not dead, f"{len(dead)} of {EVENTS} events dead-lettered by a {OUTAGE_S:.0f}s outage"
    print(f"{EVENTS} events, outage {OUTAGE_S:.0f}s, 0 dead letters, caught up {caught_up:.1f}s")


async def test_a_503_outage_longer_than_the_retry_schedule_ends_in_a_catch_up(
    kafka: str, outage_topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        response = await http.put(
            "/_sandbox/faults", json={"errors": [{"status": 503, "rate": 1.0}]}
        )
        assert response.status_code == 200, response.text

    async def heal() -> None:
        assert (await sandbox_stats(sandbox.url))["accepted_events"] == 0
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            await http.put("/_sandbox/faults", json={"errors": []})

    log = await _outage_then_recovery(kafka, outage_topic, sandbox.url, tmp_path / "f.log", heal)
    assert log.count('"endpoint_down"') <= 3, "logged once per interval, not per request"
    assert "endpoint_resumed" in log


@pytest.fixture
async def closed_port() -> AsyncIterator[list[RunningSandbox]]:
    """A port with nothing listening yet; the test starts the sandbox on it later."""
    started: list[RunningSandbox] = []
    yield started
    for running in started:
        await running.stop()


async def test_refused_connections_longer_than_the_retry_schedule_end_in_a_catch_up(
    kafka: str, outage_topic: str, closed_port: list[RunningSandbox], tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def heal() -> None:
        closed_port.append(await start_sandbox(SandboxConfig(port=port, rate=0, seed=1)))

    log = await _outage_then_recovery(kafka, outage_topic, url, tmp_path / "f.log", heal)
    assert "endpoint_down" in log and "endpoint_resumed" in log
