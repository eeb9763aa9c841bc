"""A one-hour endpoint outage, time-compressed: dead letters, catch-up time, memory while down.

    .venv/bin/python -m bench.bench_outage [--events 500000] [--outage-s 120] [--scale 30]

Setup: a local Kafka broker (6 partitions), ``--events`` events of about 500 bytes already in
the topic (the backlog), the sandbox in its own process answering 503 to every request, and
``forwarder run`` in a child process. Time is compressed by ``--scale``: the outage lasts
``--outage-s`` (120 s at 30x stands for one hour), and the retry schedule shrinks with it (the
default tiers 5 s, 30 s, 300 s become 0.17 s, 1 s, 10 s), so the schedule is spent many times
over during the outage, as it would be in an hour. The probe interval keeps its default cap
(3 s): how soon recovery is noticed is measured in real seconds.

Then the sandbox is healed and the forwarder catches up. Prints and writes to
``bench/results/outage.json``: dead letters (target 0), events delivered, time from recovery to
the first accepted request and to caught up, the catch-up rate, resident memory sampled every second during the outage (first,
median, last, max: flat means the backlog waits in Kafka, not in the process) and the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench._local import sandbox_process
from bench.bench_forwarder import PARTITIONS, ROOT, fill, forwarder_env, start_forwarder, stop
from forwarder.localkafka import KafkaCluster, create_topic, free_port


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records in a topic (end offsets summed; 0 when it does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # topics() refreshes the metadata
            return 0
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace, bootstrap: str, workdir: Path) -> dict[str, Any]:
    topic = f"outage-{uuid.uuid4().hex[:6]}"
    await create_topic(bootstrap, topic, PARTITIONS)
    await fill(bootstrap, topic, args.events, seed=7)
    scale = args.scale
    env = forwarder_env(bootstrap, topic, "", f"fwd-{uuid.uuid4().hex[:6]}", free_port())
    tiers = ",".join(f"{t / scale:.3f}" for t in (5, 30, 300))
    env |= {"FORWARDER_RETRY__TIERS": tiers}
    with sandbox_process() as (url, _):
        env["FORWARDER_ENDPOINT__URL"] = url
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            faults = {"errors": [{"status": 503, "rate": 1.0}]}
            (await http.put("/_sandbox/faults", json=faults)).raise_for_status()
            process = start_forwarder(env, workdir / "forwarder.log")
            try:
                samples: list[float] = []
                started = time.monotonic()
                while time.monotonic() - started < args.outage_s:
                    if process.poll() is not None:
                        raise RuntimeError(f"forwarder exited: see {workdir / 'forwarder.log'}")
                    samples.append(rss_mb(process.pid))
                    await asyncio.sleep(1.0)
                stats = (await http.get("/_sandbox/stats")).json()
                accepted_during = stats["accepted_events"]
                (await http.put("/_sandbox/faults", json={"errors": []})).raise_for_status()
                healed = time.monotonic()
                deadline = healed + 600
                first_accepted_s: float | None = None
                while True:
                    accepted = (await http.get("/_sandbox/stats")).json()["distinct_uuids"]
                    if accepted and first_accepted_s is None:
                        first_accepted_s = time.monotonic() - healed
                    if accepted >= args.events:
                        break
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"no catch-up: {accepted} of {args.events} delivered")
                    await asyncio.sleep(0.05)
                caught_up_s = time.monotonic() - healed
                peak = psutil.Process(process.pid).memory_info().rss / 2**20
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) / 1024
            finally:
                stop(process)
    return {
        "events": args.events,
        "outage_s": args.outage_s,
        "scale": scale,
        "stands_for_minutes": args.outage_s * scale / 60,
        "tiers_s": tiers,
        "accepted_during_outage": accepted_during,
        "dead_letters": await topic_size(bootstrap, f"{topic}.dlq"),
        "delivered": accepted,
        "recovery_to_first_accepted_s": round(first_accepted_s or 0.0, 2),
        "recovery_to_caught_up_s": round(caught_up_s, 1),
        "catch_up_events_per_s": round(args.events / caught_up_s),
        "rss_during_outage_mb": {
            "first": round(samples[0], 1),
            "median": round(statistics.median(samples), 1),
            "last": round(samples[-1], 1),
            "max": round(max(samples), 1),
        },
        "peak_rss_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--outage-s", type=float, default=120.0)
    parser.add_argument("--scale", type=float, default=30.0)
    args = parser.parse_args()
    cluster = KafkaCluster(nodes=1)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(run(args, cluster.bootstrap_servers, Path(tmp)))
    finally:
        cluster.stop()
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "outage.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
