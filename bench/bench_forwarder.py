"""Forwarder throughput and latency against a bare aiokafka consumer, side by side, on loopback.

    .venv/bin/python bench/bench_forwarder.py [--events 500000] [--runs 3] [--replicas 2]
        [--system-malloc] [--framed] [--event-bytes 500] [--latency-runs 3]

Setup: a local Kafka broker (6 partitions), the sandbox in its own process (no latency, no rate
limit), ``--events`` events of about ``--event-bytes`` (500) bytes already in the topic. Each run, alternating:

- raw ceiling: a bare AIOKafkaConsumer (new group) reads the whole topic;
- forwarder: ``forwarder run`` (new group) in a child process forwards it all; events/s is
  counted from the sandbox's first to its last accepted event; CPU seconds and peak RSS
  (VmHWM) are the child's own;
- with ``--replicas N``, also N forwarder processes in one new group (scaling out on the same
  host): events/s, summed CPU seconds and summed peak RSS;
- with ``--system-malloc``, also the forwarder with the C library's malloc instead of jemalloc;
- with ``--framed``, also the forwarder on a second topic holding the same events framed in a
  schema registry's wire format (a local Apicurio registry, the bundled schemas registered as
  writer schemas, ``common.json`` by reference): what unwrapping and writer schemas cost.

The forwarder runs with jemalloc preloaded and serving Python's small objects too
(``PYTHONMALLOC=malloc``), as its container image runs it (``deploy/Dockerfile``; Debian's
``libjemalloc2``), in this benchmark and in every other that starts it through
``forwarder_env``; ``BENCH_MALLOC=system`` runs them all with the C library's malloc under
CPython's small-object allocator.

Then latency, ``--latency-runs`` times: the forwarder runs on a fresh topic while events are
produced at a steady ``--rate`` per second; latency is the sandbox's receive time minus the Kafka
record timestamp; the figures are the medians of the runs' p50 and p99. One run is not enough:
its p99 (the worst 1 %, 0.2 s of traffic in a 20 s run) is set by whatever stalls the shared
machine for a moment, and the first run of an invocation is usually the slowest.
Prints medians of the runs and the ratio; writes the figures to bench/results/forwarder.json.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from forwarder.commands.traffic import TrafficGenerator, register_schemas
from forwarder.core.decode import UUID_NAMESPACE
from forwarder.core.framing import frame
from forwarder.engine.runtime import allocator_of
from forwarder.localkafka import KafkaCluster, LocalRegistry, create_topic, free_port
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6
MALLOC = os.environ.get("BENCH_MALLOC", "jemalloc")
# jemalloc serves every allocation, Python's small objects included (PYTHONMALLOC=malloc), as in
# the image; "system" is glibc's malloc under CPython's own small-object allocator.
_MALLOC_ENV = {
    "jemalloc": {"LD_PRELOAD": "libjemalloc.so.2", "PYTHONMALLOC": "malloc"},
    "system": {},
}


def pad_to(event: dict[str, Any], size: int) -> bytes:
    raw = orjson.dumps(event)
    if len(raw) < size:
        event["note"] = "x" * (size - len(raw) - 10)
        raw = orjson.dumps(event)
    return raw


async def fill(
    bootstrap: str,
    topic: str,
    count: int,
    seed: int,
    hot_users: float = 0.0,
    event_bytes: int = 500,
    schema_ids: dict[str, int] | None = None,
    run_id: str | None = None,
) -> None:
    """``count`` events; framed by their event type's id when ``schema_ids`` is given."""
    generator = TrafficGenerator(seed=seed, run_id=run_id or topic, hot_users=hot_users)
    ids = schema_ids or {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        events = (generator.valid() for _ in range(count))
        values = ((pad_to(e, event_bytes), e) for e in events)
        await send_all(
            producer,
            topic,
            (
                (frame(ids[e["event_type"]], raw) if ids else raw, e["user_id"].encode())
                for raw, e in values
            ),
        )
    finally:
        await producer.stop()


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes | None]]
) -> None:
    """Produce (value, key) pairs, waiting for the acknowledgements 5,000 at a time."""
    pending = []
    for value, key in records:
        pending.append(await producer.send(topic, value, key=key))
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def raw_ceiling(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        first = 0.0
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                if not first and records:
                    first = time.monotonic()
                seen += len(records)
        return count / (time.monotonic() - first)
    finally:
        await consumer.stop()


def malloc_env(malloc: str) -> dict[str, str]:
    """The environment that gives a forwarder ``malloc`` (jemalloc or system)."""
    if malloc not in _MALLOC_ENV:
        raise SystemExit(f"BENCH_MALLOC={malloc}: use jemalloc or system")
    if malloc != "system" and ctypes.util.find_library(malloc) is None:
        raise SystemExit(
            "libjemalloc2 is not installed, and the forwarder's image runs with it "
            "(deploy/Dockerfile): apt-get install libjemalloc2, or set BENCH_MALLOC=system "
            "to measure with the C library's malloc"
        )
    return _MALLOC_ENV[malloc]


def check_malloc(pid: int, malloc: str) -> None:
    """Fail unless the process ``pid`` runs with ``malloc``: a preload that cannot be loaded
    only warns, and would measure the other allocator."""
    found = allocator_of(Path(f"/proc/{pid}/maps").read_text())
    if found != malloc:
        raise RuntimeError(f"the forwarder runs with the {found} malloc, not {malloc}")


def forwarder_env(
    bootstrap: str,
    topic: str,
    sandbox: str,
    group: str,
    ops_port: int,
    malloc: str = MALLOC,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in _MALLOC_ENV["jemalloc"]}
    return {
        **inherited,
        **malloc_env(malloc),
        "TD_API_KEY": DEV_API_KEY,
        "TD_WP13N_TOKEN": DEV_TOKEN,
        "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FORWARDER_KAFKA__TOPICS": topic,
        "FORWARDER_KAFKA__GROUP_ID": group,
        "FORWARDER_ENDPOINT__URL": sandbox,
        "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
        "FORWARDER_OPS__PORT": str(ops_port),
        "FORWARDER_OPS__LOG_LEVEL": "warning",
        "FORWARDER_OPS__LOG_FORMAT": "json",
        **(extra or {}),
    }


def start_forwarder(
    env: dict[str, str],
    log: Path,
    config: Path | None = None,
    script: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``forwarder run``, or the same through ``script`` (an experiment of
    ``bench_pair.py --candidate-entry``: it patches the package, then calls its CLI)."""
    entry = [str(script)] if script else ["-m", "forwarder"]
    options = ["--config", str(config)] if config else []
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *entry, "run", *options],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def forwarder_run(
    bootstrap: str,
    topic: str,
    sandbox: str,
    count: int,
    workdir: Path,
    replicas: int = 1,
    config: Path | None = None,
    malloc: str = MALLOC,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Forward the whole topic with ``replicas`` processes in one new group.

    CPU seconds are summed over the replicas; peak RSS too (an upper bound: each process
    peaks at its own moment).
    """
    async with httpx.AsyncClient(base_url=sandbox, timeout=60) as http:
        await http.post("/_sandbox/reset", json={})
        group = f"fwd-{uuid.uuid4().hex[:6]}"
        processes = [
            start_forwarder(
                forwarder_env(bootstrap, topic, sandbox, group, free_port(), malloc, env),
                workdir / "forwarder.log",
                config,
            )
            for _ in range(replicas)
        ]
        first = last = startup_cpu = 0.0
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"forwarder exited: see {workdir / 'forwarder.log'}")
                accepted = (await http.get("/_sandbox/stats")).json()["accepted_events"]
                now = time.monotonic()
                if accepted and not first:
                    first = now
                    # Start-up: imports, schema compilation, joining the group, first fetch.
                    startup_cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)
                    for p in processes:
                        check_malloc(p.pid, malloc)
                if accepted >= count:
                    last = now
                    break
                await asyncio.sleep(0.05)
            cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)
            rss = sum(peak_rss_mb(p.pid) for p in processes)
        finally:
            for process in processes:
                stop(process)
    if not last:
        raise RuntimeError("the forwarder did not deliver everything in time")
    return {
        "events_per_s": count / (last - first),
        "cpu_s_per_million": cpu / count * 1_000_000,
        # Without start-up: CPU from the first accepted event on, per million events.
        "cpu_s_per_million_steady": (cpu - startup_cpu) / count * 1_000_000,
        "startup_cpu_s": startup_cpu,
        "peak_rss_mb": rss,
    }


async def latency(
    bootstrap: str, sandbox: str, rate: int, seconds: int, workdir: Path
) -> dict[str, float]:
    topic = f"latency-{uuid.uuid4().hex[:6]}"
    await create_topic(bootstrap, topic, PARTITIONS)
    ops_port = free_port()
    env = forwarder_env(bootstrap, topic, sandbox, f"lat-{topic}", ops_port)
    async with httpx.AsyncClient(base_url=sandbox, timeout=60) as http:
        await http.post("/_sandbox/reset", json={})
        process = start_forwarder(env, workdir / "latency.log")
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready = (
                        await http.get(f"http://127.0.0.1:{ops_port}/readyz")
                    ).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready:
                    check_malloc(process.pid, MALLOC)
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the forwarder never became ready")
                await asyncio.sleep(0.1)
            stamps = await steady_produce(bootstrap, topic, rate, seconds)
            wait_until = time.monotonic() + 60
            while (await http.get("/_sandbox/stats")).json()["distinct_uuids"] < len(stamps):
                if time.monotonic() > wait_until:
                    raise RuntimeError("not every latency event arrived")
                await asyncio.sleep(0.1)
            events = (await http.get("/_sandbox/events")).json()["events"]
        finally:
            stop(process)
    received = {row[0]: row[3] for row in events}
    samples = sorted((received[u] - ts) * 1000 for u, ts in stamps.items())
    return {
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[int(len(samples) * 0.99)],
        "events": len(samples),
    }


async def steady_produce(bootstrap: str, topic: str, rate: int, seconds: int) -> dict[str, float]:
    """Produce at ``rate``/s; return uuid -> Kafka record timestamp (seconds)."""
    generator = TrafficGenerator(seed=9, run_id=topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await producer.start()
    stamps: dict[str, float] = {}
    futures = []
    try:
        started = time.monotonic()
        total = rate * seconds
        for index in range(total):
            ahead = started + index / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            event = generator.valid()
            futures.append((event["event_id"], await producer.send(topic, pad_to(event, 500))))
        for event_id, future in futures:
            metadata = await future
            stamps[str(uuid.uuid5(UUID_NAMESPACE, event_id))] = metadata.timestamp / 1000
    finally:
        await producer.stop()
    return stamps


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=int, default=20)
    parser.add_argument(
        "--latency-runs", type=int, default=3, help="latency runs; their median p50 and p99"
    )
    parser.add_argument(
        "--event-bytes", type=int, default=500, help="size of each event (padded with a note)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="also run this many forwarder processes in one group, side by side (scaling out)",
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="also run the forwarder with the C library's malloc instead of jemalloc",
    )
    parser.add_argument(
        "--framed",
        action="store_true",
        help="also run the forwarder on the same events framed by a schema registry (a local "
        "Apicurio registry holds the writer schemas)",
    )
    args = parser.parse_args()
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/forwarder-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = KafkaCluster(nodes=1, heap_mb=1024)
    cluster.start()
    sandbox_port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "sandbox", "--port", str(sandbox_port), "--rate", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    registry = LocalRegistry() if args.framed else None
    try:
        topic = "bench"
        await create_topic(cluster.bootstrap_servers, topic, PARTITIONS)
        started = time.monotonic()
        await fill(
            cluster.bootstrap_servers, topic, args.events, seed=1, event_bytes=args.event_bytes
        )
        print(
            f"produced {args.events} events of ~{args.event_bytes} B in "
            f"{time.monotonic() - started:.1f}s; the forwarder runs with the {MALLOC} malloc",
            flush=True,
        )
        raw: list[float] = []
        fwd: list[dict[str, float]] = []
        # Variants measured in the same runs, by the key prefix of their figures.
        variants: dict[str, dict[str, Any]] = {}
        if args.replicas > 1:
            variants["replicas"] = {"replicas": args.replicas}
        if args.system_malloc:
            variants["system_malloc"] = {"malloc": "system"}
        if registry is not None:
            registry.start()
            ids = await register_schemas(registry.url, topic)
            await create_topic(cluster.bootstrap_servers, f"{topic}-framed", PARTITIONS)
            await fill(
                cluster.bootstrap_servers,
                f"{topic}-framed",
                args.events,
                seed=1,
                event_bytes=args.event_bytes,
                schema_ids=ids,
                run_id=topic,  # the same events, byte for byte, as the bare topic's
            )
            variants["framed"] = {
                "topic": f"{topic}-framed",
                "env": {"FORWARDER_REGISTRY__URL": registry.url},
            }
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for run in range(args.runs):
            raw.append(await raw_ceiling(cluster.bootstrap_servers, topic, args.events))
            fwd.append(
                await forwarder_run(
                    cluster.bootstrap_servers, topic, sandbox_url, args.events, workdir
                )
            )
            print(
                f"run {run + 1}: raw {raw[-1]:,.0f} ev/s, forwarder {fwd[-1]['events_per_s']:,.0f} ev/s, "
                f"{fwd[-1]['cpu_s_per_million']:.1f} CPU s/M "
                f"({fwd[-1]['cpu_s_per_million_steady']:.1f} without start-up), "
                f"peak RSS {fwd[-1]['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            for name, options in variants.items():
                options = dict(options)
                figures = await forwarder_run(
                    cluster.bootstrap_servers,
                    options.pop("topic", topic),
                    sandbox_url,
                    args.events,
                    workdir,
                    **options,
                )
                measured[name].append(figures)
                print(
                    f"run {run + 1}: {name} {figures['events_per_s']:,.0f} ev/s, "
                    f"{figures['cpu_s_per_million']:.1f} CPU s/M "
                    f"({figures['cpu_s_per_million_steady']:.1f} without start-up), "
                    f"summed peak RSS {figures['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        lats = []
        for run in range(args.latency_runs):
            lats.append(
                await latency(
                    cluster.bootstrap_servers, sandbox_url, args.rate, args.latency_seconds, workdir
                )
            )
            print(
                f"latency run {run + 1}: p50 {lats[-1]['p50_ms']:.1f} ms, "
                f"p99 {lats[-1]['p99_ms']:.1f} ms",
                flush=True,
            )
    finally:
        sandbox.terminate()
        sandbox.wait()
        if registry is not None:
            registry.stop()
        cluster.stop()
    med = {k: statistics.median(r[k] for r in fwd) for k in fwd[0]}
    raw_med = statistics.median(raw)
    ratios = [f["events_per_s"] / r for f, r in zip(fwd, raw, strict=True)]
    result = {
        "events": args.events,
        "event_bytes": args.event_bytes,
        "runs": args.runs,
        "malloc": MALLOC,
        "forwarder_events_per_s": round(med["events_per_s"]),
        "raw_consumer_events_per_s": round(raw_med),
        "ratio_median": round(statistics.median(ratios), 3),
        "cpu_s_per_million_events": round(med["cpu_s_per_million"], 1),
        "cpu_s_per_million_events_without_startup": round(med["cpu_s_per_million_steady"], 1),
        "startup_cpu_s": round(med["startup_cpu_s"], 2),
        "peak_rss_mb": round(med["peak_rss_mb"], 1),
    }
    if lats:  # --latency-runs 0 skips the phase
        result |= {
            "latency_rate_per_s": args.rate,
            "latency_runs": len(lats),
            "latency_p50_ms": round(statistics.median(r["p50_ms"] for r in lats), 1),
            "latency_p99_ms": round(statistics.median(r["p99_ms"] for r in lats), 1),
            "latency_p99_ms_runs": [round(r["p99_ms"], 1) for r in lats],
        }
    if args.replicas > 1:
        result["replicas"] = args.replicas
    for name, runs in measured.items():
        result[f"{name}_events_per_s"] = round(statistics.median(r["events_per_s"] for r in runs))
        result[f"{name}_ratio_median"] = round(
            statistics.median(v["events_per_s"] / r for v, r in zip(runs, raw, strict=True)), 3
        )
        result[f"{name}_cpu_s_per_million_events"] = round(
            statistics.median(r["cpu_s_per_million"] for r in runs), 1
        )
        result[f"{name}_cpu_s_per_million_events_without_startup"] = round(
            statistics.median(r["cpu_s_per_million_steady"] for r in runs), 1
        )
        result[f"{name}_peak_rss_mb"] = round(statistics.median(r["peak_rss_mb"] for r in runs), 1)
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "forwarder.json" if args.event_bytes == 500 else f"forwarder-{args.event_bytes}b.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
