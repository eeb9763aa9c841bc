"""The working tree's forwarder against an earlier commit's, alternating, in one invocation.

    .venv/bin/python bench/ab/bench_ab.py --baseline REV [--events 300000] [--rounds 6]

The sequential A/B, kept for what ``bench/bench_pair.py`` (both at once: the CPU A/B that
decides) does not report: events/s and start-up CPU side by side. Its pairs drift with the
shared machine (an A/A run scattered 0.83-1.26 per pair), so its CPU ratio alone decides
nothing. The baseline's source (``git archive REV`` into a temporary directory) and the working
tree's each run as ``forwarder run`` with the project's interpreter and its source first on
``PYTHONPATH``, alternating A B, B A, ... against one topic of ``--events`` events (6
partitions, ``bench_forwarder.fill``) and the sandbox with no limit, every run a new consumer
group reading the whole topic. Figures per run as in ``bench_peers.measure``: CPU seconds per
million events and events/s while the sandbox goes from 10 % to 90 % of the events, start-up
apart. Prints each pair, then the medians and the median of the per-pair CPU ratios (candidate
/ baseline). Both must deliver the same set of ``uuid``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
import uuid
from typing import Any

import httpx

from bench._local import filled_topic
from bench.bench_forwarder import PARTITIONS, forwarder_env, start_forwarder
from bench.bench_pair import comparison
from bench.bench_peers import measure
from forwarder.localkafka import free_port


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, workdir, trees = comparison(parser, 300_000, "ab")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    async with filled_topic("ab", args.events, PARTITIONS) as (bootstrap, topic, sandbox):

        def launcher(name: str) -> Any:
            def start() -> subprocess.Popen[bytes]:
                env = forwarder_env(
                    bootstrap, topic, sandbox, f"{name}-{uuid.uuid4().hex[:6]}", free_port()
                )
                env["PYTHONPATH"] = str(trees[name])
                return start_forwarder(env, workdir / f"{name}.log")

            return start

        async with httpx.AsyncClient(base_url=sandbox, timeout=120) as http:
            for round_ in range(args.rounds):
                order = ["baseline", "candidate"][:: 1 if round_ % 2 == 0 else -1]
                for name in order:
                    runs[name].append(await measure(name, launcher(name), http, args.events))
                base, cand = runs["baseline"][-1], runs["candidate"][-1]
                print(
                    f"pair {round_ + 1}: baseline {base['cpu_s_per_million_steady']:.2f}, "
                    f"candidate {cand['cpu_s_per_million_steady']:.2f} CPU-s/M steady; "
                    f"{base['events_per_s']:,.0f} / {cand['events_per_s']:,.0f} events/s",
                    flush=True,
                )
    if {r["uuid_digest"] for rs in runs.values() for r in rs} != {
        runs["baseline"][0]["uuid_digest"]
    }:
        print("WARNING: baseline and candidate delivered different sets of uuids")
    ratios = [
        c["cpu_s_per_million_steady"] / b["cpu_s_per_million_steady"]
        for b, c in zip(runs["baseline"], runs["candidate"], strict=True)
    ]
    for name, rs in runs.items():
        print(
            f"{name:>9} ({args.baseline if name == 'baseline' else 'working tree'}): "
            f"{statistics.median(r['cpu_s_per_million_steady'] for r in rs):.2f} CPU-s/M steady, "
            f"{statistics.median(r['events_per_s'] for r in rs):,.0f} events/s, "
            f"start-up {statistics.median(r['startup_cpu_s'] for r in rs):.2f} CPU-s"
        )
    print(
        f"CPU ratio candidate / baseline per pair: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.3f}, candidate lower in "
        f"{sum(r < 1 for r in ratios)} of {len(ratios)} pairs "
        f"(load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')})"
    )


if __name__ == "__main__":
    asyncio.run(main())
