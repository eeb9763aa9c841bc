"""Scaling out: 1, 2 and 3 forwarder processes in one group over 12 partitions, side by side.

    .venv/bin/python bench/bench_scale.py [--events 300000] [--rounds 3] [--replicas 1,2,3]

Setup: a local Kafka broker, one topic of 12 partitions holding ``--events`` events of about
500 bytes (``bench_forwarder.fill``), the sandbox in its own process with no rate limit. Each
round runs every replica count once, in an order rotated by one each round, each a new group
reading the whole topic (``bench_forwarder.forwarder_run``): events/s from the sandbox's first to
its last accepted event, CPU seconds summed over the processes per million events (start-up
included, and without it), summed peak RSS. Also prints events per CPU-second without start-up,
which is what one core can forward. Writes bench/results/scale.json.

Everything shares the machine: on 2 cores the broker, the sandbox and the replicas compete, so
the events/s of N replicas tells how the group spreads the work, not what N hosts would reach;
the summed CPU per million events is the figure to size replicas by.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from pathlib import Path
from typing import Any

from bench._local import filled_topic
from bench.bench_forwarder import ROOT, forwarder_run

PARTITIONS = 12


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", default="1,2,3", help="replica counts, comma-separated")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    workdir = Path(os.environ.get("BENCH_WORKDIR", "/tmp/forwarder-bench-scale"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    async with filled_topic("scale", args.events, PARTITIONS) as (bootstrap, topic, sandbox):
        for round_ in range(args.rounds):
            shift = round_ % len(counts)
            for replicas in counts[shift:] + counts[:shift]:
                figures = await forwarder_run(
                    bootstrap, topic, sandbox, args.events, workdir, replicas=replicas
                )
                runs[replicas].append(figures)
                print(
                    f"round {round_ + 1}, {replicas} replica(s): "
                    f"{figures['events_per_s']:,.0f} events/s, "
                    f"{figures['cpu_s_per_million']:.1f} CPU-s/M summed "
                    f"({figures['cpu_s_per_million_steady']:.1f} without start-up), "
                    f"summed peak RSS {figures['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    summary: dict[str, dict[str, Any]] = {}
    for replicas, rs in runs.items():
        medians = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        summary[str(replicas)] = {
            **{key: round(value, 2) for key, value in medians.items()},
            "events_per_cpu_s": round(1e6 / medians["cpu_s_per_million_steady"]),
            "runs": rs,
        }
    print(
        "| replicas | events/s | CPU-s per million events, summed (without start-up) "
        "| events per CPU-second | summed peak RSS |"
    )
    print("|---|---|---|---|---|")
    for replicas, s in summary.items():
        print(
            f"| {replicas} | {s['events_per_s']:,.0f} | {s['cpu_s_per_million']:.1f} "
            f"({s['cpu_s_per_million_steady']:.1f}) | {s['events_per_cpu_s']:,} "
            f"| {s['peak_rss_mb']:.0f} MB |"
        )
    result = {
        "events": args.events,
        "partitions": PARTITIONS,
        "rounds": args.rounds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "replicas": summary,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
