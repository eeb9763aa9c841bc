"""The forwarder against the peers a user would pick instead, side by side, in rotated rounds.

    .venv/bin/python bench/bench_peers.py [--events 300000] [--rounds 3]

Setup: a local Kafka broker, one topic of 6 partitions holding ``--events`` events of about
500 bytes (``bench_forwarder.fill``), the sandbox in its own process with no rate limit. Each
round runs every contender once, in an order rotated by one each round, each as a child
process in a new consumer group reading the whole topic into the freshly reset sandbox:

- ``forwarder``: ``forwarder run``, default configuration (``bench_forwarder.start_forwarder``);
- ``naive``: ``bench/peers/naive_asyncio.py`` with the project's interpreter (aiokafka with
  auto-commit, orjson, jsonschema-rs, aiohttp; failures dropped);
- ``quixstreams``: ``bench/peers/quix_app.py`` with the interpreter of a virtual environment
  of its own (``~/.cache/forwarder/peers-venv``, or ``$FORWARDER_PEERS_VENV``), made here with
  ``python -m venv`` and pip at the pinned versions below: quixstreams is not a dependency of
  the project.

Both peers do the forwarder's per-event work (``bench/peers/_work.py``: parse, validate
against ``schemas/``, ``uuid`` and ``time``, batches of up to 500 per event type posted to
``/<database>/<table>`` with the same headers and body); after each run the benchmark checks
that the sandbox holds every event once, under the same set of ``uuid`` for every contender.
All three get ``bench_forwarder.forwarder_env``'s environment, so all three run with the same
allocator: jemalloc for every allocation, as the forwarder's image runs it, or glibc's malloc
under ``BENCH_MALLOC=system``; each run checks the contender's memory map for it
(``bench_forwarder.check_malloc``). The comparison is like for like.

Figures per run, from the sandbox's count of accepted events and the child process, sampled
every 50 ms: events/s and CPU seconds (user + system, psutil) per million events while the
sandbox went from 10 % to 90 % of the events (steady state: no start-up, no wait for the last
partial batches); CPU per million over the whole run, start-up included; the CPU seconds and
the time spent until the first accepted event (start-up, reported apart); peak RSS (VmHWM).
Prints each round with the ratio of events/s to the forwarder's in that round, then medians as
a markdown table; writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._local import filled_topic
from bench.bench_forwarder import (
    MALLOC,
    PARTITIONS,
    ROOT,
    check_malloc,
    forwarder_env,
    peak_rss_mb,
    start_forwarder,
    stop,
)
from forwarder.core.decode import UUID_NAMESPACE
from forwarder.localkafka import free_port

PEERS = ROOT / "bench" / "peers"
PEERS_VENV = Path(
    os.environ.get("FORWARDER_PEERS_VENV", Path.home() / ".cache" / "forwarder" / "peers-venv")
)
# The quixstreams peer's environment. jsonschema-rs and orjson at the project's versions;
# confluent-kafka (quixstreams' client) pinned at the version quixstreams 3.28 takes (< 2.13).
PEERS_PINS = (
    "quixstreams==3.28.1",
    "confluent-kafka==2.12.2",
    "jsonschema-rs==0.60.3",
    "orjson==3.13.0",
    "requests==2.34.2",
)
# The window of the steady-state figures, in shares of the events accepted.
STEADY = (0.1, 0.9)
CONTENDERS = ("forwarder", "naive", "quixstreams")
GUARANTEES = {
    "forwarder": "all of ours: at-least-once per event, retries, dead letters, no loss on a crash",
    "naive": "none: auto-commit loses open and in-flight batches on a crash; failed requests "
    "and invalid events are dropped",
    "quixstreams": "at-least-once per checkpoint (5 s replayed after a crash); invalid events "
    "dropped; bad JSON or a failed request stops it",
}


def peers_python() -> Path:
    """The peers' interpreter: the virtual environment made (once) at the pinned versions."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".pins"
    wanted = "\n".join(PEERS_PINS) + "\n"
    if not python.exists():
        print(f"creating {PEERS_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"installing {', '.join(PEERS_PINS)} into {PEERS_VENV}", flush=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", *PEERS_PINS], check=True)
        stamp.write_text(wanted)
    return python


def check_namespace() -> None:
    if f'uuid.UUID("{UUID_NAMESPACE}")' not in (PEERS / "_work.py").read_text():
        raise RuntimeError("bench/peers/_work.py has another uuid namespace than the forwarder")


def launcher(
    name: str, bootstrap: str, topic: str, sandbox: str, workdir: Path, quix_python: Path
) -> Callable[[], subprocess.Popen[bytes]]:
    log = workdir / f"{name}.log"

    def start() -> subprocess.Popen[bytes]:
        group = f"{name}-{uuid.uuid4().hex[:6]}"
        env = forwarder_env(bootstrap, topic, sandbox, group, free_port())
        if name == "forwarder":
            return start_forwarder(env, log)
        python, script = (
            (Path(sys.executable), "naive_asyncio.py")
            if name == "naive"
            else (quix_python, "quix_app.py")
        )
        with log.open("ab") as out:
            return subprocess.Popen(
                [str(python), str(PEERS / script), bootstrap, topic, group, sandbox],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    return start


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def measure(
    name: str, start: Callable[[], subprocess.Popen[bytes]], http: httpx.AsyncClient, count: int
) -> dict[str, Any]:
    await http.post("/_sandbox/reset", json={})
    started = time.monotonic()
    process = start()
    child = psutil.Process(process.pid)
    # (seconds since start, events accepted, the child's CPU seconds), every 50 ms.
    samples: list[tuple[float, int, float]] = []
    rss = 0.0
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: see its log")
            accepted = (await http.get("/_sandbox/stats")).json()["accepted_events"]
            samples.append((time.monotonic() - started, accepted, cpu_s(child)))
            if accepted >= count:
                rss = peak_rss_mb(process.pid)
                # Every contender gets the forwarder's environment: the same allocator.
                check_malloc(process.pid, MALLOC)
                break
            if samples[-1][0] > 600:
                raise RuntimeError(f"{name} did not deliver everything in 600 s")
            await asyncio.sleep(0.05)
    finally:
        stop(process)
    stats = (await http.get("/_sandbox/stats")).json()
    uuids = (await http.get("/_sandbox/uuids")).json()["uuids"]
    if stats["distinct_uuids"] != count or stats["rejected"]:
        raise RuntimeError(f"{name}: sandbox stats {stats}")

    def at(share: float) -> tuple[float, int, float]:
        return next(s for s in samples if s[1] >= share * count)

    first, low, high, last = at(1e-9), at(STEADY[0]), at(STEADY[1]), samples[-1]
    if high[0] <= low[0]:  # all in one poll (a tiny --events): the whole delivery instead
        low, high = first, last
    return {
        # From 10 % to 90 % of the events accepted: neither start-up nor the last batches'
        # linger (the forwarder's 200 ms, quixstreams' next checkpoint) weigh on it.
        "events_per_s": (high[1] - low[1]) / (high[0] - low[0]),
        "cpu_s_per_million_steady": (high[2] - low[2]) / (high[1] - low[1]) * 1e6,
        "cpu_s_per_million": last[2] / count * 1e6,
        "events_per_s_first_to_last": (count - first[1]) / (last[0] - first[0]),
        "startup_cpu_s": first[2],
        "startup_s": first[0],
        "peak_rss_mb": rss,
        "duplicates": stats["duplicates"],
        "uuid_digest": hashlib.sha256("\n".join(sorted(uuids)).encode()).hexdigest()[:16],
    }


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| contender | events/s | ratio to forwarder | CPU-s per million events, steady "
        "(whole run) | start-up CPU-s | peak RSS | guarantees |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['events_per_s']:,} | {s['ratio_median']:.2f} "
            f"| {s['cpu_s_per_million_steady']:.1f} ({s['cpu_s_per_million']:.1f}) "
            f"| {s['startup_cpu_s']:.2f} | {s['peak_rss_mb']:.0f} MB | {GUARANTEES[name]} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    check_namespace()
    quix_python = peers_python()
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/forwarder-bench-peers"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    ratios: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    async with filled_topic("peers", args.events, PARTITIONS) as (bootstrap, topic, sandbox):
        starts = {
            name: launcher(name, bootstrap, topic, sandbox, workdir, quix_python)
            for name in CONTENDERS
        }
        async with httpx.AsyncClient(base_url=sandbox, timeout=120) as http:
            for round_ in range(args.rounds):
                shift = round_ % len(CONTENDERS)
                order = CONTENDERS[shift:] + CONTENDERS[:shift]
                measured = {
                    name: await measure(name, starts[name], http, args.events) for name in order
                }
                base = measured["forwarder"]["events_per_s"]
                for name in order:
                    figures = measured[name]
                    ratios[name].append(figures["events_per_s"] / base)
                    runs[name].append(figures)
                    print(
                        f"round {round_ + 1} {name:>11}: {figures['events_per_s']:>9,.0f} ev/s"
                        f" (x{ratios[name][-1]:.2f}),"
                        f" {figures['cpu_s_per_million_steady']:.1f} CPU-s/M steady"
                        f" ({figures['cpu_s_per_million']:.1f} whole run; start-up"
                        f" {figures['startup_cpu_s']:.2f} CPU-s, {figures['startup_s']:.1f} s),"
                        f" peak RSS {figures['peak_rss_mb']:.0f} MB, uuids {figures['uuid_digest']}",
                        flush=True,
                    )
    digests = {r["uuid_digest"] for rs in runs.values() for r in rs}
    if len(digests) != 1:
        print(f"WARNING: the contenders delivered different sets of uuids: {digests}")
    summary: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        summary[name] = {
            "events_per_s": round(statistics.median(r["events_per_s"] for r in rs)),
            "ratio_median": round(statistics.median(ratios[name]), 3),
            **{
                key: round(statistics.median(r[key] for r in rs), 2)
                for key in (
                    "cpu_s_per_million",
                    "cpu_s_per_million_steady",
                    "events_per_s_first_to_last",
                    "startup_cpu_s",
                    "startup_s",
                    "peak_rss_mb",
                )
            },
            "guarantees": GUARANTEES[name],
            "runs": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rs
            ],
        }
    result = {
        "events": args.events,
        "event_bytes": 500,
        "partitions": PARTITIONS,
        "rounds": args.rounds,
        "peers_pins": list(PEERS_PINS),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "same_uuids_everywhere": len(digests) == 1,
        "contenders": summary,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "peers.json").write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(summary))


if __name__ == "__main__":
    asyncio.run(main())
