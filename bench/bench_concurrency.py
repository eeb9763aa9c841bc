"""Adaptive concurrency against the sandbox's capacity model: goodput, 429s, p99, settling.

    .venv/bin/python -m bench.bench_concurrency [--seconds 15] [--warmup 5] [--events 150000]

Setup: a local Kafka broker with one topic of ``--events`` events of about 500 bytes (6
partitions), the sandbox in its own process with its capacity model on (``capacity`` C
requests served at once, ``--service-ms`` each alone, up to twice that when all C are busy,
429 with code 2013 at once above C, no ``Retry-After``), and the forwarder's ``Pipeline``
in this process (so each request's latency and the limit can be read exactly) with batches
of ``--batch`` events, no token bucket and a new consumer group each run.

For each capacity (2, 8, 24) and each ``limits.max_in_flight`` (1, 2, 4, 8, 16, 32 and
"adaptive"), one run of ``--warmup`` + ``--seconds``: from the first request, the warm-up is
left out, then goodput (events the sandbox accepted per second), the share of requests answered
429, and the p99 latency of the accepted requests. The service time (100 ms) keeps the best
goodput near 2,500 events/s, so the endpoint, not the forwarder's CPU, is the bottleneck on
this 2-core machine. Then one adaptive run in which the capacity goes 24 -> 4 -> 24, each
phase ``--phase`` seconds: the time from each change until the limit stays within one (or 15 %)
of the new capacity, and the 429 share of each phase once settled.

``--settings adaptive --merge bench/results/concurrency.json`` runs adaptive alone and takes
the static rows from an earlier run. Prints a table, writes ``bench/results/concurrency.json`` and ``docs/adaptive-concurrency.svg``
(the limit over time in the change run, the capacity drawn under it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._local import filled_topics, sandbox_process
from bench.svg_plot import Series, line_plot
from forwarder.config import load_config
from forwarder.core.classify import SendResult
from forwarder.core.schemas import SchemaRegistry, default_schema_dir
from forwarder.engine.pipeline import Pipeline
from forwarder.ports import Sink
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

ROOT = Path(__file__).resolve().parent.parent
CAPACITIES = (2, 8, 24)
SETTINGS: tuple[int | str, ...] = (1, 2, 4, 8, 16, 32, "adaptive")
PARTITIONS = 6
SAMPLE_S = 0.1


@dataclass
class TimedSink:
    """The pipeline's sink, each request's start, duration and status recorded."""

    sink: Sink
    samples: list[tuple[float, float, int | None]] = field(default_factory=list)

    async def send(self, destination: str, body: bytes) -> SendResult:
        began = time.monotonic()
        result = await self.sink.send(destination, body)
        self.samples.append((began, time.monotonic() - began, result.status))
        return result

    async def aclose(self) -> None:
        await self.sink.aclose()


def pipeline_for(bootstrap: str, topic: str, sandbox: str, setting: int | str, batch: int) -> Any:
    env = {
        "TD_API_KEY": DEV_API_KEY,
        "TD_WP13N_TOKEN": DEV_TOKEN,
        "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FORWARDER_KAFKA__TOPICS": topic,
        "FORWARDER_KAFKA__GROUP_ID": f"conc-{uuid.uuid4().hex[:8]}",
        "FORWARDER_ENDPOINT__URL": sandbox,
        "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
        "FORWARDER_LIMITS__MAX_IN_FLIGHT": str(setting),
        "FORWARDER_BATCH__MAX_EVENTS": str(batch),
        "FORWARDER_HEALTH__PROBE_EVENTS": str(min(10, batch)),
        "FORWARDER_OPS__SHUTDOWN_TIMEOUT_S": "5",
    }
    pipeline = Pipeline(load_config(None, env), SchemaRegistry.from_dirs([default_schema_dir()]))
    timed = TimedSink(pipeline._delivery._sink)  # bench only: time every request
    pipeline._delivery._sink = timed
    return pipeline, timed


def limit_of(pipeline: Pipeline) -> int:
    value = pipeline.metrics.registry.get_sample_value("forwarder_concurrency_limit")
    return int(value or 0)


async def accepted(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/_sandbox/stats")).json()["accepted_events"]
    return count


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def window_figures(timed: TimedSink, since: float, until: float) -> dict[str, float]:
    window = [s for s in timed.samples if since <= s[0] < until]
    refused = sum(1 for s in window if s[2] == 429)
    ok = [elapsed for _, elapsed, status in window if status is not None and status < 300]
    return {
        "requests": len(window),
        "share_429": refused / max(1, len(window)),
        "p99_ms": p99(ok) * 1000,
    }


async def set_capacity(http: httpx.AsyncClient, capacity: int, service_ms: float) -> None:
    response = await http.put(
        "/_sandbox/faults", json={"capacity": capacity, "service_ms": service_ms}
    )
    response.raise_for_status()


async def first_request(timed: TimedSink, task: asyncio.Task[None]) -> float:
    while not timed.samples:
        if task.done():
            task.result()
            raise RuntimeError("the pipeline stopped before its first request")
        await asyncio.sleep(0.02)
    return timed.samples[0][0]


async def one_run(
    args: argparse.Namespace,
    bootstrap: str,
    topic: str,
    sandbox: str,
    http: httpx.AsyncClient,
    setting: int | str,
    capacity: int,
) -> dict[str, Any]:
    await http.post("/_sandbox/reset", json={})
    await set_capacity(http, capacity, args.service_ms)
    pipeline, timed = pipeline_for(bootstrap, topic, sandbox, setting, args.batch)
    task = asyncio.create_task(pipeline.run())
    try:
        start = await first_request(timed, task)
        await asyncio.sleep(max(0.0, start + args.warmup - time.monotonic()))
        since, before = time.monotonic(), await accepted(http)
        limits = []
        while time.monotonic() < since + args.seconds:
            limits.append(limit_of(pipeline))
            await asyncio.sleep(SAMPLE_S)
        until, after = time.monotonic(), await accepted(http)
        controller = pipeline._delivery._limiter.concurrency  # bench only
        decreases = dict(controller.decreases) if controller is not None else {}
    finally:
        pipeline.stop()
        await asyncio.wait_for(task, 60)
    figures = window_figures(timed, since, until)
    return {
        "setting": setting,
        "capacity": capacity,
        "goodput": (after - before) / (until - since),
        "limit_median": sorted(limits)[len(limits) // 2] if limits else 0,
        "decreases": decreases,
        **figures,
    }


def settle_s(points: list[tuple[float, int]], changed: float, end: float, capacity: int) -> float:
    """Seconds from ``changed`` until the limit stays within max(1, 15 %) of ``capacity``
    up to ``end`` (inf if it never does)."""
    band = max(1, round(0.15 * capacity))
    phase = [(t, limit) for t, limit in points if changed <= t < end]
    settled_at = changed
    for t, limit in phase:
        if abs(limit - capacity) > band:
            settled_at = t + SAMPLE_S
    return settled_at - changed if settled_at < end else float("inf")


async def change_run(
    args: argparse.Namespace, bootstrap: str, topic: str, sandbox: str, http: httpx.AsyncClient
) -> dict[str, Any]:
    """Adaptive, the capacity 24, then 4, then 24 again, ``--phase`` seconds each."""
    phases = (24, 4, 24)
    await http.post("/_sandbox/reset", json={})
    await set_capacity(http, phases[0], args.service_ms)
    pipeline, timed = pipeline_for(bootstrap, topic, sandbox, "adaptive", args.batch)
    task = asyncio.create_task(pipeline.run())
    points: list[tuple[float, int]] = []
    changes: list[float] = []
    try:
        start = await first_request(timed, task)
        for n, capacity in enumerate(phases):
            if n:
                await set_capacity(http, capacity, args.service_ms)
            changes.append(time.monotonic())
            while time.monotonic() < changes[-1] + args.phase:
                points.append((time.monotonic(), limit_of(pipeline)))
                await asyncio.sleep(SAMPLE_S)
        end = time.monotonic()
    finally:
        pipeline.stop()
        await asyncio.wait_for(task, 60)
    bounds = [*changes, end]
    result: dict[str, Any] = {"phases": []}
    for n, capacity in enumerate(phases):
        settle = settle_s(points, bounds[n], bounds[n + 1], capacity)
        settled_from = bounds[n] + (settle if settle != float("inf") else 0)
        result["phases"].append(
            {
                "capacity": capacity,
                "settle_s": settle,
                **window_figures(timed, settled_from, bounds[n + 1]),
            }
        )
    result["points"] = [(round(t - start, 2), limit) for t, limit in points]
    result["capacity_at"] = [(round(t - start, 2), c) for t, c in zip(changes, phases, strict=True)]
    result["end"] = round(end - start, 2)
    return result


def write_plot(change: dict[str, Any], path: Path) -> None:
    ends = [t for t, _ in change["capacity_at"][1:]] + [change["end"]]
    capacity: list[tuple[float, float]] = []
    for (at, c), end in zip(change["capacity_at"], ends, strict=True):
        capacity += [(at, c), (end, c)]
    limit = [(float(t), float(v)) for t, v in change["points"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        line_plot(
            [
                Series("capacity (sandbox)", capacity, "#999999", dashed=True),
                Series("adaptive limit", limit, "#1f77b4"),
            ],
            title="Adaptive concurrency: the limit as the sandbox's capacity goes 24 → 4 → 24",
            x_label="seconds since the first request",
            y_label="requests in flight",
        )
    )


def table(runs: list[dict[str, Any]], capacities: Sequence[int]) -> str:
    lines = [
        "| capacity | max_in_flight | goodput (events/s) | of best static | 429 share | p99 (ms) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for capacity in capacities:
        order = {s: n for n, s in enumerate(SETTINGS)}
        rows = sorted(
            (r for r in runs if r["capacity"] == capacity), key=lambda r: order[r["setting"]]
        )
        best = max(r["goodput"] for r in rows if r["setting"] != "adaptive")
        for r in rows:
            setting = r["setting"]
            if setting == "adaptive":
                setting = f"adaptive (limit ~{r['limit_median']})"
            lines.append(
                f"| {capacity} | {setting} | {r['goodput']:,.0f} | {r['goodput'] / best:.2f} "
                f"| {r['share_429'] * 100:.1f} % | {r['p99_ms']:.0f} |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--phase", type=float, default=15.0)
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--service-ms", type=float, default=100.0)
    parser.add_argument("--capacities", type=int, nargs="*", default=list(CAPACITIES))
    parser.add_argument(
        "--settings",
        nargs="*",
        default=[str(s) for s in SETTINGS],
        help="the max_in_flight settings to run (e.g. only adaptive, with --merge)",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        help="an earlier concurrency.json: its runs of the settings not run now join the table",
    )
    args = parser.parse_args()
    settings = [int(s) if s.isdigit() else s for s in args.settings]
    runs: list[dict[str, Any]] = []
    if args.merge:
        earlier = json.loads(args.merge.read_text())["runs"]
        runs += [r for r in earlier if r["setting"] not in settings]
    async with filled_topics("conc", [args.events], PARTITIONS) as (bootstrap, (topic,)):
        with sandbox_process() as (sandbox, _):
            async with httpx.AsyncClient(base_url=sandbox, timeout=30) as http:
                for capacity in args.capacities:
                    for setting in settings:
                        run = await one_run(
                            args, bootstrap, topic, sandbox, http, setting, capacity
                        )
                        runs.append(run)
                        print(json.dumps(run), flush=True)
                change = await change_run(args, bootstrap, topic, sandbox, http)
    print(table(runs, args.capacities))
    for phase in change["phases"]:
        print(
            f"capacity -> {phase['capacity']}: settled in {phase['settle_s']:.1f} s, then "
            f"{phase['share_429'] * 100:.1f} % 429, p99 {phase['p99_ms']:.0f} ms"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "concurrency.json").write_text(
        json.dumps({"runs": runs, "change": change, "args": vars(args)}, indent=1, default=str)
    )
    write_plot(change, ROOT / "docs" / "adaptive-concurrency.svg")


if __name__ == "__main__":
    asyncio.run(main())
