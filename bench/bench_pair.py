"""The working tree's forwarder and a revision's, run at the same time, CPU per event of each.

    .venv/bin/python bench/bench_pair.py --baseline REV [--events 200000] [--rounds 6]
        [--candidate-entry SCRIPT] [--candidate-env NAME=VALUE]

``bench_ab.py`` runs the two one after the other; on this shared machine the speed drifts
between two runs by more than most changes save (an A/A run of one commit against itself
scattered 0.83-1.26 per pair). Here both run at once, so whatever slows the machine slows both:
two topics of the same ``--events`` (6 partitions, ``bench_forwarder.fill``), two sandbox
processes, each forwarder reading one topic into one sandbox in a new consumer group, the
topics and sandboxes swapped every round. Each one's CPU seconds (user + system) are taken
while its sandbox goes from 10 % of the events until either sandbox holds 85 %, divided by the
events its sandbox accepted meanwhile. Prints each round's figures and ratio (candidate /
baseline) and their median. Both compete for the same 2 cores, so the absolute figures are
higher than a lone run's; the ratio is the figure. ``--candidate-entry`` runs the working
tree through an experiment's script (``bench/_confluent_consumer.py``) instead of ``-m
forwarder``; ``--candidate-malloc`` runs it with another malloc than the baseline's;
``--candidate-env NAME=VALUE`` sets a variable for it alone (``FORWARDER_LIMITS__MAX_IN_FLIGHT=
adaptive`` against ``--baseline HEAD``: the cost of a setting, the code the same).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from bench._local import filled_topics, sandbox_process
from bench.bench_ab import comparison
from bench.bench_forwarder import (
    MALLOC,
    PARTITIONS,
    check_malloc,
    forwarder_env,
    start_forwarder,
    stop,
)
from bench.bench_peers import cpu_s
from forwarder.localkafka import free_port


async def accepted(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/_sandbox/stats")).json()["accepted_events"]
    return count


async def reached(
    which: Callable[[list[int]], int], https: list[httpx.AsyncClient], events: float
) -> None:
    """Until ``which`` (min or max) of the sandboxes' counts reaches ``events``."""
    while True:
        if which([await accepted(h) for h in https]) >= events:
            return
        await asyncio.sleep(0.05)


async def one_round(
    trees: dict[str, Path],
    bootstrap: str,
    topics: list[str],
    https: list[httpx.AsyncClient],
    n: int,
    total: int,
    workdir: Path,
    scripts: dict[str, Path],
    mallocs: dict[str, str],
    envs: dict[str, dict[str, str]],
) -> dict[str, float]:
    """Both trees at once, tree i on topic and sandbox ``(i + n) % 2``; CPU-s per million each."""
    runs = {}
    for i, (name, tree) in enumerate(trees.items()):
        http = https[(i + n) % 2]
        await http.post("/_sandbox/reset", json={})
        env = forwarder_env(
            bootstrap,
            topics[(i + n) % 2],
            str(http.base_url),
            f"p-{uuid.uuid4().hex[:6]}",
            free_port(),
            mallocs.get(name, MALLOC),
        )
        env["PYTHONPATH"] = str(tree)
        env.update(envs.get(name, {}))
        process = start_forwarder(env, workdir / f"{name}.log", script=scripts.get(name))
        runs[name] = (process, psutil.Process(process.pid), http)
    try:
        await reached(min, [h for _, _, h in runs.values()], total * 0.1)
        for name, (process, _, _) in runs.items():
            check_malloc(process.pid, mallocs.get(name, MALLOC))
        start = {k: (cpu_s(ps), await accepted(h)) for k, (_, ps, h) in runs.items()}
        await reached(max, [h for _, _, h in runs.values()], total * 0.85)
        end = {k: (cpu_s(ps), await accepted(h)) for k, (_, ps, h) in runs.items()}
    finally:
        for process, _, _ in runs.values():
            stop(process)
    return {
        name: (end[name][0] - start[name][0]) / max(1, end[name][1] - start[name][1]) * 1e6
        for name in runs
    }


async def main() -> None:
    args, workdir, trees = comparison(__doc__.splitlines()[0], 200_000, "pair")
    scripts = {"candidate": args.candidate_entry.resolve()} if args.candidate_entry else {}
    mallocs = {"candidate": args.candidate_malloc} if args.candidate_malloc else {}
    envs = {"candidate": dict(item.partition("=")[::2] for item in args.candidate_env)}
    ratios = []
    async with filled_topics("pair", [args.events] * 2, PARTITIONS) as (bootstrap, topics):
        with sandbox_process() as (first, _), sandbox_process() as (second, _):
            async with (
                httpx.AsyncClient(base_url=first, timeout=60) as one,
                httpx.AsyncClient(base_url=second, timeout=60) as two,
            ):
                for n in range(args.rounds):
                    cpu = await one_round(
                        trees,
                        bootstrap,
                        topics,
                        [one, two],
                        n,
                        args.events,
                        workdir,
                        scripts,
                        mallocs,
                        envs,
                    )
                    ratios.append(cpu["candidate"] / cpu["baseline"])
                    print(
                        f"round {n + 1}: baseline {cpu['baseline']:.2f}, candidate "
                        f"{cpu['candidate']:.2f} CPU-s/M; ratio {ratios[-1]:.3f}",
                        flush=True,
                    )
    print(
        f"CPU ratio candidate / baseline per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.3f}, candidate lower in "
        f"{sum(r < 1 for r in ratios)} of {len(ratios)} rounds (load average "
        f"{os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
