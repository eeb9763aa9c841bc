"""Ingest throughput and CPU with personalization activation on, against the same run without.

    .venv/bin/python bench/bench_personalization.py [--events 300000] [--runs 3]

Setup as ``bench_forwarder.py`` (local broker, 6 partitions, the sandbox in its own process with
no ingest limit and its personalization service at the seed's limit: 100/s, bursts of 200/s for
10 s), ``--events`` events of ~500 B with 5 % of the users making half of them. Each run,
alternating: ``forwarder run`` without personalization, then with one service triggered by
``page_view`` and ``product_view`` (about 70 % of the events). Figures: ingest events/s (sandbox,
first to last accepted event), the forwarder's CPU seconds per million events, and the
personalization requests/s the sandbox saw (and its 429s). Writes
bench/results/personalization.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_forwarder import PARTITIONS, ROOT, fill, forwarder_run
from forwarder.core.rate_reserve import busiest_window
from forwarder.localkafka import KafkaCluster, create_topic, free_port


def service_config(path: Path, sandbox: str) -> Path:
    path.write_text(
        "[[personalization.services]]\n"
        'name = "recs"\nparent_segment_id = "394649"\n'
        f'url = "{sandbox}"\n'
        'triggers = ["page_view", "product_view"]\n'
        'context = { device_type = "device_type" }\n'
        "max_in_flight = 32\n"
    )
    return path


async def requests_seen(sandbox: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sandbox, timeout=60) as http:
        seen = (await http.get("/_sandbox/personalization/requests")).json()
        await http.post("/_sandbox/personalization/reset", json={})
    times = seen["times"]
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    return {
        "requests": len(times),
        "requests_per_s": len(times) / span if span else 0.0,
        "throttled_429": seen["statuses"].get("429", 0),
        "busiest_1s": busiest_window(times, 1.0),
        "busiest_10s": busiest_window(times, 10.0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/forwarder-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = KafkaCluster(nodes=1, heap_mb=1024)
    cluster.start()
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "sandbox", "--port", str(port), "--rate", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    config = service_config(workdir / "personalization.toml", url)
    plain: list[dict[str, float]] = []
    with_p13n: list[dict[str, float]] = []
    p13n: list[dict[str, Any]] = []
    try:
        await create_topic(cluster.bootstrap_servers, "bench", PARTITIONS)
        started = time.monotonic()
        await fill(cluster.bootstrap_servers, "bench", args.events, seed=1, hot_users=0.05)
        print(f"produced {args.events} events in {time.monotonic() - started:.1f}s", flush=True)
        for run in range(args.runs):
            plain.append(
                await forwarder_run(cluster.bootstrap_servers, "bench", url, args.events, workdir)
            )
            await requests_seen(url)
            with_p13n.append(
                await forwarder_run(
                    cluster.bootstrap_servers, "bench", url, args.events, workdir, config=config
                )
            )
            p13n.append(await requests_seen(url))
            print(
                f"run {run + 1}: without {plain[-1]['events_per_s']:,.0f} ev/s "
                f"{plain[-1]['cpu_s_per_million']:.1f} CPU s/M; with personalization "
                f"{with_p13n[-1]['events_per_s']:,.0f} ev/s "
                f"{with_p13n[-1]['cpu_s_per_million']:.1f} CPU s/M, "
                f"{p13n[-1]['requests_per_s']:.0f} requests/s (busiest second {p13n[-1]['busiest_1s']}), "
                f"{p13n[-1]['throttled_429']} x 429",
                flush=True,
            )
    finally:
        sandbox.terminate()
        sandbox.wait()
        cluster.stop()

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    result = {
        "events": args.events,
        "runs": args.runs,
        "hot_users": 0.05,
        "without_events_per_s": round(median(plain, "events_per_s")),
        "with_events_per_s": round(median(with_p13n, "events_per_s")),
        "ratio_median": round(
            statistics.median(
                w["events_per_s"] / p["events_per_s"] for w, p in zip(with_p13n, plain, strict=True)
            ),
            3,
        ),
        "without_cpu_s_per_million_events": round(median(plain, "cpu_s_per_million"), 1),
        "with_cpu_s_per_million_events": round(median(with_p13n, "cpu_s_per_million"), 1),
        "personalization_requests_per_s": round(median(p13n, "requests_per_s"), 1),
        "personalization_429s": [r["throttled_429"] for r in p13n],
        "personalization_busiest_1s": max(r["busiest_1s"] for r in p13n),
        "personalization_busiest_10s": max(r["busiest_10s"] for r in p13n),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "personalization.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
