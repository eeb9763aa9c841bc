"""Can the sandbox keep up? Events per second it accepts on loopback, from another process.

    .venv/bin/python bench/ab/bench_sandbox.py [--seconds 10] [--runs 3] [--concurrency 16]

The sandbox runs as ``forwarder sandbox --rate 0`` in its own process; this process posts valid
realtime bodies of 500 events of about 500 bytes (every ``uuid`` distinct, so the recorder does
its full work) over ``--concurrency`` connections for ``--seconds``. The figure is the sandbox's
own ``accepted_events`` over the run, median of ``--runs``; also the sandbox's CPU seconds per
million events. Writes bench/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp
import httpx
import psutil

from bench._local import HEADERS, Bodies, sandbox_process

RESULTS = Path(__file__).resolve().parents[1] / "results"


async def load(url: str, seconds: float, concurrency: int, bodies: Bodies) -> int:
    """Post bodies until the time is up; return the events the sandbox said it accepted."""
    stop_at = time.monotonic() + seconds
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while time.monotonic() < stop_at:
            async with session.post(f"{url}/clickstream/page_view", data=bodies.next()) as reply:
                await reply.read()
                if reply.status == 204:
                    ok += bodies.events

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def one_run(url: str, pid: int, seconds: float, concurrency: int) -> dict[str, float]:
    httpx.post(f"{url}/_sandbox/reset", json={}).raise_for_status()
    sandbox = psutil.Process(pid)
    cpu_before = sum(sandbox.cpu_times()[:2])
    started = time.monotonic()
    sent = asyncio.run(load(url, seconds, concurrency, Bodies(500)))
    elapsed = time.monotonic() - started
    cpu = sum(sandbox.cpu_times()[:2]) - cpu_before
    stats = httpx.get(f"{url}/_sandbox/stats", timeout=30).json()
    if stats["accepted_events"] != sent or stats["distinct_uuids"] != sent:
        raise RuntimeError(f"the sandbox counted {stats}, the client {sent}")
    return {
        "events_per_s": stats["accepted_events"] / elapsed,
        "requests_per_s": stats["accepted_requests"] / elapsed,
        "sandbox_cpu_s_per_million": cpu / stats["accepted_events"] * 1_000_000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    runs = []
    with sandbox_process() as (url, pid):
        for index in range(args.runs):
            result = one_run(url, pid, args.seconds, args.concurrency)
            runs.append(result)
            print(
                f"run {index + 1}: {result['events_per_s']:,.0f} events/s "
                f"({result['requests_per_s']:,.0f} requests/s), sandbox CPU "
                f"{result['sandbox_cpu_s_per_million']:.1f} s per million events"
            )
    summary = {
        "runs": args.runs,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "events_per_request": 500,
        "events_per_s_median": round(statistics.median(r["events_per_s"] for r in runs)),
        "sandbox_cpu_s_per_million_median": round(
            statistics.median(r["sandbox_cpu_s_per_million"] for r in runs), 2
        ),
    }
    print(
        f"sandbox accepts {summary['events_per_s_median']:,} events/s "
        f"(median of {args.runs}); target: well over 100,000"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sandbox.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
