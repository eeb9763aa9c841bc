"""Which httpx transport should the sink use? Both, side by side, against the sandbox.

    .venv/bin/python bench/ab/bench_transport.py [--seconds 5] [--rounds 3] [--concurrency 8]

design.md section 4 asks to pick the transport by measurement. Each round posts the same
bodies through ``httpx.AsyncClient`` with (a) its default transport (httpcore) and (b)
``httpx_aiohttp.AiohttpTransport``, alternating, with ``--concurrency`` requests in flight for
``--seconds`` each: once with 500-event bodies (~250 KB, the forwarder's full batches) and once
with 10-event bodies. The sandbox runs in its own process without a rate limit. Prints medians
of requests/s and client CPU milliseconds per request, and the ratio; writes
bench/results/transport.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx_aiohttp

from bench._local import HEADERS, Bodies, sandbox_process

RESULTS = Path(__file__).resolve().parents[1] / "results"
TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
    "httpx default (httpcore)": lambda: None,
    "httpx + httpx-aiohttp": lambda: httpx_aiohttp.AiohttpTransport(),
}


async def drive(
    url: str, make: Callable[[], httpx.AsyncBaseTransport | None], bodies: list[bytes], args: Any
) -> dict[str, float]:
    transport = make()
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=HEADERS, transport=transport, limits=limits, timeout=30
    ) as client:
        done = 0
        stop_at = time.monotonic() + args.seconds

        async def worker(offset: int) -> None:
            nonlocal done
            index = offset
            while time.monotonic() < stop_at:
                reply = await client.post(
                    "/clickstream/page_view", content=bodies[index % len(bodies)]
                )
                if reply.status_code != 204:
                    raise RuntimeError(f"sandbox answered {reply.status_code}: {reply.text}")
                done += 1
                index += args.concurrency

        cpu = time.process_time()
        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu
    return {"requests_per_s": done / elapsed, "cpu_ms_per_request": cpu / done * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with sandbox_process() as (url, _pid):
        for size in (500, 10):
            maker = Bodies(size)
            bodies = [maker.next() for _ in range(64)]
            for round_ in range(args.rounds):
                for name, make in TRANSPORTS.items():
                    result = asyncio.run(drive(url, make, bodies, args))
                    results.setdefault(f"{size} events", {}).setdefault(name, []).append(result)
                    print(
                        f"{size:>3} events/request, round {round_ + 1}, {name}: "
                        f"{result['requests_per_s']:,.0f} requests/s, "
                        f"{result['cpu_ms_per_request']:.3f} ms CPU/request"
                    )
    summary: dict[str, Any] = {"rounds": args.rounds, "concurrency": args.concurrency}
    print()
    for case, by_transport in results.items():
        medians = {
            name: {
                key: round(statistics.median(r[key] for r in runs), 3)
                for key in ("requests_per_s", "cpu_ms_per_request")
            }
            for name, runs in by_transport.items()
        }
        default, aiohttp_ = (medians[name] for name in TRANSPORTS)
        ratio = aiohttp_["requests_per_s"] / default["requests_per_s"]
        summary[case] = {**medians, "aiohttp_over_default": round(ratio, 2)}
        for name, figures in medians.items():
            print(
                f"{case:>10} | {name:<26} | {figures['requests_per_s']:>8,.0f} requests/s | "
                f"{figures['cpu_ms_per_request']:.3f} ms CPU/request"
            )
        print(f"{case:>10} | httpx-aiohttp / default: {ratio:.2f}x requests/s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transport.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
