"""A peer: the naive asyncio forwarder a user might write in an afternoon.

    python bench/peers/naive_asyncio.py BOOTSTRAP TOPIC GROUP URL

aiokafka with auto-commit, orjson, jsonschema-rs, aiohttp; up to 8 requests in flight;
per-event-type batches of up to 500 closed by count or after 200 ms. What it does not
guarantee: offsets are committed on a timer whatever happened to the events, so a crash loses
the batches still open or in flight, and a failed request or an invalid event is dropped (only
counted): no retry, no dead-letter topic. TD_API_KEY and TD_WP13N_TOKEN come from the
environment. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import aiohttp
import orjson
from _work import MAX_EVENTS, Work, body_of, headers, path_of
from aiokafka import AIOKafkaConsumer

LINGER_S = 0.2
IN_FLIGHT = 8


async def main(bootstrap: str, topic: str, group: str, url: str) -> None:
    work = Work()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    session = aiohttp.ClientSession(
        base_url=url, headers=headers(), connector=aiohttp.TCPConnector(limit=IN_FLIGHT)
    )
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    dropped = 0

    async def post(event_type: str, encoded: list[bytes]) -> None:
        nonlocal dropped
        try:
            async with session.post(path_of(event_type), data=body_of(encoded)) as response:
                await response.read()
                if response.status >= 300:
                    dropped += len(encoded)
        except (aiohttp.ClientError, OSError, TimeoutError):
            dropped += len(encoded)
        finally:
            slots.release()

    async def send(event_type: str, encoded: list[bytes]) -> None:
        await slots.acquire()
        task = asyncio.create_task(post(event_type, encoded))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await consumer.start()
    buffers: dict[str, list[bytes]] = {}
    opened: dict[str, float] = {}
    try:
        while not stopping.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in fetched.values():
                for record in records:
                    try:
                        event = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        dropped += 1
                        continue
                    if not work.valid(event):
                        dropped += 1
                        continue
                    work.enrich(
                        event, record.topic, record.partition, record.offset, record.timestamp
                    )
                    event_type = event["event_type"]
                    buffer = buffers.get(event_type)
                    if buffer is None:
                        buffer = buffers[event_type] = []
                        opened[event_type] = time.monotonic()
                    buffer.append(work.encode(event))
                    if len(buffer) >= MAX_EVENTS:
                        del buffers[event_type]
                        await send(event_type, buffer)
            now = time.monotonic()
            for event_type in [
                t for t, at in opened.items() if t in buffers and now - at >= LINGER_S
            ]:
                await send(event_type, buffers.pop(event_type))
    finally:
        await consumer.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await session.close()
        print(f"dropped {dropped}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
