"""The Kafka client's own cost: aiokafka with the forwarder's fetch settings, reading only.

    .venv/bin/python bench/ab/bench_consumers.py [--events 500000] [--rounds 3]

A local broker, one topic of 6 partitions holding ``--events`` events of about 500 bytes
(``bench_forwarder.fill``). Each round runs ``consumer_only.py`` (beside this file) once, in its
own process, reading the whole topic in a new consumer group. Prints each run and the medians:
CPU seconds per million records while 10 % to 90 % were read, records/s, start-up CPU seconds
and peak RSS.

It answers how much of the forwarder's CPU per event is its Kafka client's (the floor under
anything the forwarder does; docs/performance.md), and measures a change to the fetch settings
on the client alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._local import filled_topics
from bench.bench_forwarder import PARTITIONS

CONSUMER_ONLY = Path(__file__).resolve().parent / "consumer_only.py"


def run(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(CONSUMER_ONLY), bootstrap, topic, str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the consumer exited with {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    async with filled_topics("consumers", [args.events], PARTITIONS) as (bootstrap, (topic,)):
        for round_ in range(args.rounds):
            figures = run(bootstrap, topic, args.events)
            runs.append(figures)
            print(
                f"round {round_ + 1}: {figures['cpu_s_per_million_steady']:.2f} CPU-s/M,"
                f" {figures['records_per_s']:,.0f} records/s,"
                f" start-up {figures['startup_cpu_s']:.2f} CPU-s,"
                f" peak RSS {figures['peak_rss_mb']:.0f} MB",
                flush=True,
            )

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(
        f"aiokafka, median of {len(runs)}: "
        f"{median('cpu_s_per_million_steady'):.2f} CPU-s per million records steady, "
        f"{median('records_per_s'):,.0f} records/s, start-up {median('startup_cpu_s'):.2f} CPU-s, "
        f"peak RSS {median('peak_rss_mb'):.0f} MB"
    )


if __name__ == "__main__":
    asyncio.run(main())
