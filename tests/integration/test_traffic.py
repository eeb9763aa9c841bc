"""``forwarder traffic``, the compose stack's generator, writes what it says to the topic."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson

from .support import read_all


async def test_traffic_command_produces_the_count_with_some_malformed_events(
    kafka: str, topic: str
) -> None:
    command = [sys.executable, "-m", "forwarder", "traffic", "--bootstrap-servers", kafka]
    command += ["--topic", topic, "--count", "600", "--rate", "2000", "--bad-ratio", "0.2"]
    finished = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert f"produced 600 events to {topic}" in finished.stdout
    records = await read_all(kafka, topic)
    assert len(records) == 600

    def is_event(value: bytes) -> bool:
        try:
            return isinstance(orjson.loads(value), dict)
        except orjson.JSONDecodeError:
            return False

    malformed = sum(1 for r in records if not is_event(r.value))
    # Invalid JSON and non-objects are two of the five bad kinds: some, but far from all.
    assert 0 < malformed < 300
