"""Shared by the benchmarks: the sandbox in its own process, a broker with a filled topic beside
it, and request bodies of real size."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

import httpx
import orjson

from bench.bench_forwarder import fill
from forwarder.localkafka import KafkaCluster, create_topic, free_port
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

HEADERS = {
    "Authorization": f"TD1 {DEV_API_KEY}",
    "WP13n-Token": DEV_TOKEN,
    "Content-Type": "application/json",
}


@contextmanager
def sandbox_process(rate: float = 0) -> Iterator[tuple[str, int]]:
    """``forwarder sandbox`` as a child process with no rate limit; yields (url, pid)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "sandbox", "--port", str(port), "--rate", str(rate)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sandbox/stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def filled_topics(
    prefix: str, sizes: Sequence[int], partitions: int, schema_ids: dict[str, int] | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """A local broker (1 GB heap) with a new topic per size in ``sizes``, each holding that many
    events of about 500 bytes (``bench_forwarder.fill``; framed by ``schema_ids`` when given:
    the same sizes, the topic's name in the event ids); yields (bootstrap, topics)."""
    cluster = KafkaCluster(nodes=1, heap_mb=1024)
    cluster.start()
    try:
        bootstrap = cluster.bootstrap_servers
        topics = []
        for events in sizes:
            topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
            await create_topic(bootstrap, topic, partitions)
            began = time.monotonic()
            await fill(bootstrap, topic, events, seed=1, schema_ids=schema_ids)
            print(
                f"produced {events} events of ~500 B in {time.monotonic() - began:.1f}s", flush=True
            )
            topics.append(topic)
        yield bootstrap, topics
    finally:
        cluster.stop()


@asynccontextmanager
async def filled_topic(
    prefix: str, events: int, partitions: int
) -> AsyncIterator[tuple[str, str, str]]:
    """``filled_topics`` with one topic, and the sandbox process; yields (bootstrap, topic,
    sandbox URL)."""
    async with filled_topics(prefix, [events], partitions) as (bootstrap, (topic,)):
        with sandbox_process() as (sandbox, _):
            yield bootstrap, topic, sandbox


class Bodies:
    """Request bodies of ``events`` events of about ``event_bytes`` each, every uuid distinct."""

    def __init__(self, events: int, event_bytes: int = 500) -> None:
        self.events = events
        sample = {
            "uuid": "00000000-0000-0000-0000-000000000000",
            "event_type": "page_view",
            "event_id": "e-000000000000",
            "timestamp": "2026-11-22T10:00:00Z",
            "time": 1795000000,
            "user_id": "user-1",
            "page": {"url": "https://shop.example/p/1", "title": "A product"},
        }
        pad = max(0, event_bytes - len(orjson.dumps(sample)) - 10)
        sample["note"] = "x" * pad
        head, _, tail = orjson.dumps(sample).partition(b"00000000-0000-0000-0000-000000000000")
        self._head, self._tail = head, tail
        self._count = 0

    def next(self) -> bytes:
        start = self._count
        self._count += self.events
        parts = [
            b"%s%032x%s" % (self._head, n, self._tail) for n in range(start, start + self.events)
        ]
        return b'{"events":[' + b",".join(parts) + b"]}"
