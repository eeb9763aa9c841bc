"""Memory of the forwarder while the endpoint stalls and a large backlog waits in Kafka.

    .venv/bin/python bench/bench_memory.py [--sizes 2000,20000] [--events 1000000,100000]
        [--seconds 60] [--unbounded]

Setup: a local Kafka broker, a 6-partition topic per event size filled with ``--events``
events of that many bytes, the sandbox in its own process answering no request (every request
waits an hour; ``endpoint.timeout_s`` an hour too, so nothing fails and nothing is freed), and
``forwarder run`` with the default configuration in a child process. The forwarder reads until
its bounds stop it (``kafka.max_pending_bytes``, ``kafka.max_pending_per_partition``); RSS is
sampled every half second for ``--seconds`` and the peak (VmHWM) read at the end, beside the
forwarder's own ``forwarder_pending_bytes`` and the records it read. The forwarder runs with
``bench_forwarder.forwarder_env``'s allocator (jemalloc unless ``BENCH_MALLOC=system``), checked
in its memory map before the peak is read.
``--unbounded`` also runs each size with ``max_pending_bytes`` at 64 GB: the count bound alone,
as before issue 12. Prints a table; writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from bench._local import sandbox_process
from bench.bench_forwarder import (
    MALLOC,
    check_malloc,
    forwarder_env,
    pad_to,
    send_all,
    start_forwarder,
    stop,
)
from forwarder.commands.traffic import TrafficGenerator
from forwarder.localkafka import KafkaCluster, create_topic, free_port

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 512  # deploy/kubernetes/deployment.yaml: resources.limits.memory 512Mi


async def fill(bootstrap: str, topic: str, count: int, size: int) -> float:
    """``count`` valid events of ``size`` bytes (1,000 distinct ones, repeated); seconds taken."""
    generator = TrafficGenerator(seed=7, run_id=topic)
    values = [pad_to(generator.valid(), size) for _ in range(1000)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1024 * 1024, acks=1
    )
    await producer.start()
    started = time.monotonic()
    try:
        await send_all(producer, topic, ((values[i % 1000], None) for i in range(count)))
    finally:
        await producer.stop()
    return time.monotonic() - started


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = {}
    for name in ("forwarder_pending_bytes", "forwarder_events_consumed_total"):
        values = [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
        found[name] = sum(values)
    return found


async def measure(
    bootstrap: str, topic: str, sandbox: str, seconds: float, workdir: Path, extra: dict[str, str]
) -> dict[str, Any]:
    port = free_port()
    env = forwarder_env(bootstrap, topic, sandbox, f"mem-{uuid.uuid4().hex[:6]}", port)
    env.update({"FORWARDER_ENDPOINT__TIMEOUT_S": "3600", **extra})
    process = start_forwarder(env, workdir / f"{topic}.log")
    rss: list[float] = []
    figures: dict[str, float] = {}
    try:
        handle = psutil.Process(process.pid)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the forwarder exited: see {workdir / f'{topic}.log'}")
            rss.append(handle.memory_info().rss / 2**20)
            with contextlib.suppress(httpx.HTTPError):
                figures = scrape(port)
            await asyncio.sleep(0.5)
        check_malloc(process.pid, MALLOC)
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    finally:
        stop(process)
    return {
        "peak_rss_mb": round(peak, 1),
        "last_rss_mb": round(rss[-1], 1) if rss else None,
        "pending_mb": round(figures.get("forwarder_pending_bytes", 0) / 2**20, 1),
        "records_read": int(figures.get("forwarder_events_consumed_total", 0)),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--events", default="1000000,100000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--unbounded", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.events.split(",")]
    workdir = ROOT / "bench" / "results" / "memory-logs"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    cluster = KafkaCluster(nodes=1, heap_mb=1024)
    cluster.start()
    try:
        with sandbox_process() as (sandbox, _pid):
            async with httpx.AsyncClient(base_url=sandbox) as http:
                answer = await http.put("/_sandbox/faults", json={"latency_ms": 3_600_000})
                answer.raise_for_status()
            for size, count in zip(sizes, counts, strict=True):
                topic = f"mem-{size}-{uuid.uuid4().hex[:6]}"
                await create_topic(cluster.bootstrap_servers, topic, 6)
                took = await fill(cluster.bootstrap_servers, topic, count, size)
                print(f"{count:,} events of {size:,} bytes in Kafka ({took:.0f}s)", flush=True)
                runs = [("default", {})]
                if args.unbounded:
                    runs.append(
                        (
                            "count bound only",
                            {"FORWARDER_KAFKA__MAX_PENDING_BYTES": str(64 * 2**30)},
                        )
                    )
                for label, extra in runs:
                    row = await measure(
                        cluster.bootstrap_servers, topic, sandbox, args.seconds, workdir, extra
                    )
                    row.update({"event_bytes": size, "backlog": count, "config": label})
                    results.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        cluster.stop()
    print(
        f"\n| event size | backlog | config | records read | pending (MiB) | peak RSS (MiB) | limit {LIMIT_MB} MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ok = "under" if r["peak_rss_mb"] < LIMIT_MB else "**over**"
        print(
            f"| {r['event_bytes']:,} B | {r['backlog']:,} | {r['config']} | {r['records_read']:,} "
            f"| {r['pending_mb']} | {r['peak_rss_mb']} | {ok} |"
        )
    out = ROOT / "bench" / "results" / "memory.json"
    out.write_text(json.dumps({"runs": results, "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
