"""The working tree's forwarder and a revision's, run at the same time, CPU per event of each.

    .venv/bin/python bench/bench_pair.py --baseline REV [--events 200000] [--rounds 6]
        [--candidate-entry SCRIPT] [--candidate-malloc jemalloc|system]
        [--candidate-env NAME=VALUE]

How a change to the per-event path is judged (docs/performance.md, "Judging a change"). Run one
after the other (``bench/ab/bench_ab.py``), two runs of one commit drift apart on this shared
machine by more than most changes save (an A/A run scattered 0.83-1.26 per pair). Here both run
at once, so whatever slows the machine slows both: two topics of the same ``--events`` (6
partitions, ``bench_forwarder.fill``), two sandbox processes, each forwarder reading one topic
into one sandbox in a new consumer group, the topics and sandboxes swapped every round. Each
one's CPU seconds (user + system) are taken while its sandbox goes from 10 % of the events
until either sandbox holds 85 %, divided by the events its sandbox accepted meanwhile. Prints
each round's figures and ratio (candidate / baseline) and their median. Both compete for the
same 2 cores, so the absolute figures are higher than a lone run's; the ratio is the figure.

``--candidate-entry`` runs the working tree through a script instead of ``-m forwarder`` (one
that patches the package or sets an event-loop policy, then calls ``forwarder.cli.main``);
``--candidate-malloc`` runs it with another malloc than the baseline's;
``--candidate-env NAME=VALUE`` sets a variable for it alone (``FORWARDER_LIMITS__MAX_IN_FLIGHT=
adaptive`` against ``--baseline HEAD``: the cost of a setting, the code the same)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from bench._local import filled_topics, sandbox_process
from bench.bench_forwarder import (
    MALLOC,
    PARTITIONS,
    ROOT,
    check_malloc,
    forwarder_env,
    start_forwarder,
    stop,
)
from bench.bench_peers import cpu_s
from forwarder.localkafka import free_port


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (the package and its schemas) unpacked into ``into``."""
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--output", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def comparison(
    parser: argparse.ArgumentParser, events: int, name: str
) -> tuple[argparse.Namespace, Path, dict[str, Path]]:
    """``parser`` with the options every A/B benchmark shares (``--baseline``, ``--events``,
    ``--rounds``) parsed, a new work directory, and the trees compared: the baseline revision
    exported there, the working tree."""
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix=f"forwarder-{name}-"))
    return args, workdir, {"baseline": export(args.baseline, workdir), "candidate": ROOT}


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidate-entry",
        type=Path,
        help="run the candidate through this script instead of `-m forwarder` (a script that "
        "patches the package or sets an event-loop policy, then calls forwarder.cli.main)",
    )
    parser.add_argument(
        "--candidate-malloc",
        choices=["jemalloc", "system"],
        help="run the candidate with this malloc, the baseline with BENCH_MALLOC's "
        "(BENCH_MALLOC=system bench_pair.py --baseline HEAD --candidate-malloc jemalloc)",
    )
    parser.add_argument(
        "--candidate-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the candidate only (e.g. "
        "FORWARDER_LIMITS__MAX_IN_FLIGHT=adaptive against --baseline HEAD's static default)",
    )
    args, workdir, trees = comparison(parser, 200_000, "pair")
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
