"""Helpers shared by the integration tests: configs, topic reading, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from forwarder.config import Config, load_config
from forwarder.core.decode import UUID_NAMESPACE
from forwarder.core.schemas import SchemaRegistry, default_schema_dir
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

REGISTRY = SchemaRegistry.from_dirs([default_schema_dir()])


def env_for(
    kafka: str, topic: str, sandbox_url: str, group: str | None = None, **overrides: Any
) -> dict[str, str]:
    env = {
        "TD_API_KEY": DEV_API_KEY,
        "TD_WP13N_TOKEN": DEV_TOKEN,
        "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": kafka,
        "FORWARDER_KAFKA__TOPICS": topic,
        "FORWARDER_KAFKA__GROUP_ID": group or f"g-{topic}",
        "FORWARDER_ENDPOINT__URL": sandbox_url,
        "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
        "FORWARDER_BATCH__LINGER_MS": "50",
        "FORWARDER_OPS__SHUTDOWN_TIMEOUT_S": "10",
        "FORWARDER_OPS__PORT": "0",
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        env[f"FORWARDER_{section.upper()}__{name.upper()}"] = str(value)
    return env


def config_for(kafka: str, topic: str, sandbox_url: str, **overrides: Any) -> Config:
    return load_config(None, env_for(kafka, topic, sandbox_url, **overrides))


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        for task in list(_RUNNING):
            if task.done():
                _RUNNING.discard(task)
                task.result()  # raises the pipeline's exception
                raise AssertionError("the pipeline stopped on its own")
        for process in list(_PROCESSES):
            if process.process.poll() is not None:
                _PROCESSES.discard(process)
                raise AssertionError(
                    f"forwarder exited with {process.process.returncode}: {process.output()[-3000:]}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


_RUNNING: set[asyncio.Task[None]] = set()
_PROCESSES: set[ForwarderProcess] = set()


@contextlib.asynccontextmanager
async def running(pipeline: Pipeline) -> AsyncIterator[asyncio.Task[None]]:
    """Run a pipeline in the background; a crash of it fails the waiting test at once."""
    task = asyncio.create_task(pipeline.run())
    _RUNNING.add(task)
    try:
        yield task
    finally:
        _RUNNING.discard(task)
        pipeline.stop()
        await asyncio.wait_for(task, 60)


async def read_all(kafka: str, topic: str) -> list[ConsumerRecord]:
    """Every record of a topic up to its end offsets now (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def set_faults(url: str, **faults: object) -> None:
    """Change the sandbox's faults (the fields given) through its control API."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.put("/_sandbox/faults", json=faults)
        assert response.status_code == 200, response.text


async def sandbox_stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/_sandbox/stats")).json()  # type: ignore[no-any-return]


async def forwarder_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> tuple[int, str, str]:
    """``python -m forwarder ARGS`` to its end: exit status, stdout, stderr (killed at ``timeout``)."""
    import os
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "forwarder",
        *args,
        env={**os.environ, **env, "FORWARDER_OPS__PORT": "0", "FORWARDER_OPS__LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"forwarder {' '.join(args)} still running after {timeout} s"
        ) from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_delivered(url: str, count: int, timeout: float, what: str) -> None:
    """Wait until the sandbox at ``url`` has ``count`` distinct uuids."""

    async def delivered() -> bool:
        return (await sandbox_stats(url))["distinct_uuids"] >= count

    await wait_for(delivered, timeout, what)


async def sandbox_uuids(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return (await http.get("/_sandbox/uuids")).json()["uuids"]  # type: ignore[no-any-return]


def uuid_of(event_id: str) -> str:
    import uuid

    return str(uuid.uuid5(UUID_NAMESPACE, event_id))


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


class ForwarderProcess:
    """``forwarder run`` as a real child process, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Any) -> None:
        import os
        import subprocess
        import sys

        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "forwarder", "run"],
            env={**os.environ, **env, "FORWARDER_OPS__LOG_FORMAT": "json"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _PROCESSES.add(self)

    def signal(self, signum: int) -> None:
        _PROCESSES.discard(self)  # its exit is expected from now on
        self.process.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"forwarder did not exit within {timeout}s; log: {self.log_path}"
                )
            await asyncio.sleep(0.1)
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def ensure_dead(self) -> None:
        _PROCESSES.discard(self)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
