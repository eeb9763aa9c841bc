"""The Kafka client's own cost: aiokafka (the forwarder's) against confluent-kafka, reading only.

    .venv/bin/python bench/bench_consumers.py [--events 500000] [--rounds 3]

A local broker, one topic of 6 partitions holding ``--events`` events of about 500 bytes
(``bench_forwarder.fill``). Each round runs ``bench/peers/consumer_only.py`` once per client,
in an order rotated by one each round, each reading the whole topic in a new consumer group:
``aiokafka`` with the project's interpreter; ``confluent`` (each message turned into the record
tuple an adapter would hand the core) and ``confluent-raw`` with the peers' interpreter
(``bench_peers.peers_python``: confluent-kafka is not a dependency of the project). Prints each
run and the medians: CPU seconds per million records while 10 % to 90 % were read, the ratio
to aiokafka's in the same round, records/s, start-up CPU seconds and peak RSS.

It answers one question: how much of the forwarder's CPU per event is its Kafka client's, and
how much another client would spare (README, Performance).
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
from bench.bench_peers import PEERS, peers_python

CLIENTS = ("aiokafka", "confluent", "confluent-raw")


def run(python: Path, client: str, bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(PEERS / "consumer_only.py"), client, bootstrap, topic, str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{client} exited with {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pythons = {"aiokafka": Path(sys.executable)}
    pythons["confluent"] = pythons["confluent-raw"] = peers_python()
    runs: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
    async with filled_topics("consumers", [args.events], PARTITIONS) as (bootstrap, (topic,)):
        for round_ in range(args.rounds):
            shift = round_ % len(CLIENTS)
            measured = {
                client: run(pythons[client], client, bootstrap, topic, args.events)
                for client in CLIENTS[shift:] + CLIENTS[:shift]
            }
            base = measured["aiokafka"]["cpu_s_per_million_steady"]
            for client in CLIENTS:
                figures = measured[client]
                figures["ratio"] = figures["cpu_s_per_million_steady"] / base
                runs[client].append(figures)
                print(
                    f"round {round_ + 1} {client:>13}: "
                    f"{figures['cpu_s_per_million_steady']:.2f} CPU-s/M (x{figures['ratio']:.2f}),"
                    f" {figures['records_per_s']:,.0f} records/s,"
                    f" start-up {figures['startup_cpu_s']:.2f} CPU-s,"
                    f" peak RSS {figures['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    print(
        "\n| client | CPU-s per million records, steady | ratio to aiokafka | records/s "
        "| start-up CPU-s | peak RSS |\n|---|---|---|---|---|---|"
    )
    for client, rs in runs.items():

        def median(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        print(
            f"| {client} | {median('cpu_s_per_million_steady'):.2f} | {median('ratio'):.2f} "
            f"| {median('records_per_s'):,.0f} | {median('startup_cpu_s'):.2f} "
            f"| {median('peak_rss_mb'):.0f} MB |"
        )


if __name__ == "__main__":
    asyncio.run(main())
