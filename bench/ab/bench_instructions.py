"""Instructions per event of ``forwarder run``, counted by callgrind: the working tree against a
git revision.

    .venv/bin/python bench/ab/bench_instructions.py [--baseline REV] [--events 4000,16000]
        [--framed]

CPU seconds on this shared machine drift by ±10% between two runs of the same code, more than
most single changes save; the instructions a process executes do not (two runs of one tree
agree within 0.1%). So a change to the per-event path is judged here first, then by
``bench/bench_pair.py`` in CPU seconds. Instructions are not seconds: cache misses, system
calls and the kernel's work are not counted, so this guides, and the CPU figures are what
docs/performance.md quotes.

Setup: a local broker, the sandbox process, two topics of ``--events`` (6 partitions,
``bench_forwarder.fill``). Each tree runs ``forwarder run`` under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``) once per topic, stopped by SIGTERM once the sandbox holds every event;
the difference between the two totals over the difference in events is the figure: start-up
and shutdown cancel out. About 3 minutes; needs valgrind. ``--framed`` counts the working tree
also on the same events framed by a schema registry (a local Apicurio holds the writer schemas).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench._local import filled_topics, sandbox_process
from bench.bench_forwarder import PARTITIONS, ROOT, forwarder_env
from bench.bench_pair import export
from forwarder.commands.traffic import register_schemas
from forwarder.localkafka import LocalRegistry, free_port


def counted(path: Path) -> int:
    """The instruction total callgrind wrote."""
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


async def instructions(
    tree: Path,
    bootstrap: str,
    topic: str,
    events: int,
    http: httpx.AsyncClient,
    workdir: Path,
    extra: dict[str, str] | None = None,
) -> int:
    await http.post("/_sandbox/reset", json={})
    # The C library's malloc, as in the figures counted before jemalloc: instructions are
    # this benchmark's measure of the forwarder's own code.
    env = forwarder_env(
        bootstrap,
        topic,
        str(http.base_url),
        f"i-{uuid.uuid4().hex[:6]}",
        free_port(),
        "system",
        extra,
    )
    env.update(PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    out = workdir / f"callgrind-{uuid.uuid4().hex[:6]}.out"
    with (workdir / "forwarder.log").open("ab") as log:
        process = subprocess.Popen(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                *(sys.executable, "-m", "forwarder", "run"),
            ],
            env=env,
            cwd=tree,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 1200
        while (await http.get("/_sandbox/stats")).json()["accepted_events"] < events:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the forwarder stopped or stalled; see {workdir}")
            await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        process.wait(600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return counted(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision to compare against")
    parser.add_argument("--events", default="4000,16000", help="the two topics' sizes")
    parser.add_argument("--framed", action="store_true", help="also the same events framed")
    args = parser.parse_args()
    small, large = (int(n) for n in args.events.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="forwarder-instructions-"))
    trees = {"working tree": ROOT}
    if args.baseline:
        trees = {args.baseline: export(args.baseline, workdir), **trees}
    figures = {}
    async with filled_topics("instructions", [small, large], PARTITIONS) as (bootstrap, topics):
        with sandbox_process() as (sandbox, _):
            async with httpx.AsyncClient(base_url=sandbox, timeout=120) as http:
                for name, tree in trees.items():
                    totals = [
                        await instructions(tree, bootstrap, topic, n, http, workdir)
                        for topic, n in zip(topics, (small, large), strict=True)
                    ]
                    figures[name] = (totals[1] - totals[0]) / (large - small)
                    print(
                        f"{name}: {figures[name]:,.0f} instructions per event "
                        f"({totals[0]:,} for {small:,} events, {totals[1]:,} for {large:,})",
                        flush=True,
                    )
    if args.framed:
        figures["framed"] = await _framed(small, large, workdir)
        ratio = figures["framed"] / figures["working tree"]
        print(f"framed: {figures['framed']:,.0f} instructions per event, {ratio:.3f} of bare")
    if args.baseline:
        ratio = figures["working tree"] / figures[args.baseline]
        print(f"ratio working tree / {args.baseline}: {ratio:.3f} ({os.uname().machine})")


async def _framed(small: int, large: int, workdir: Path) -> float:
    """Instructions per event of the working tree on framed events, writer schemas from a
    local registry."""
    with LocalRegistry() as registry:
        ids = await register_schemas(registry.url, "instructions")
        extra = {"FORWARDER_REGISTRY__URL": registry.url}
        async with filled_topics("instructions", [small, large], PARTITIONS, ids) as (
            bootstrap,
            topics,
        ):
            with sandbox_process() as (sandbox, _):
                async with httpx.AsyncClient(base_url=sandbox, timeout=120) as http:
                    totals = [
                        await instructions(ROOT, bootstrap, topic, n, http, workdir, extra)
                        for topic, n in zip(topics, (small, large), strict=True)
                    ]
    print(f"framed: {totals[0]:,} for {small:,} events, {totals[1]:,} for {large:,}", flush=True)
    return (totals[1] - totals[0]) / (large - small)


if __name__ == "__main__":
    asyncio.run(main())
