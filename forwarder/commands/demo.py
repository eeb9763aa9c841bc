"""``forwarder demo``: everything on one machine, nothing to install or configure.

Starts a local Apache Kafka broker and the destination sandbox (with a few injected 500s so
retries show), produces realistic clickstream traffic with a few percent of bad events of every
kind, runs the forwarder with a live display, and ends with a summary: delivered, retried and
dead-lettered by reason. Personalization activation is on (``product_view`` and
``add_to_cart`` trigger the sandbox's emulated service, 1 % of the users make half of the
traffic): the summary shows the answers published, the cache hit ratio, the fallbacks and two
example answers. With ``--registry`` a local schema registry (Apicurio, ``LocalRegistry``) is
started too, the bundled schemas registered in it, and the traffic framed as registry-aware
producers write it (a tenth left bare, a few with an id no registry has: ``unknown_schema``).
Exit status 0 when every event is accounted for.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.live import Live
from rich.table import Table

from forwarder.commands.demo_personalization import (
    drain as drain_personalization,
)
from forwarder.commands.demo_personalization import (
    inject_personalization_faults,
    personalization_summary,
    personalization_toml,
)
from forwarder.commands.traffic import FRAMED_BAD_KINDS, TrafficGenerator, produce, register_schemas
from forwarder.config import load_config
from forwarder.engine.pipeline import Pipeline
from forwarder.engine.service import load_registry
from forwarder.localkafka import KafkaCluster, LocalRegistry, create_topic
from forwarder.sandbox import ErrorRule, Faults, SandboxConfig, start_sandbox
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN
from forwarder.telemetry.logs import configure_logging

TOPIC = "clickstream"


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of a counter's samples whose labels match ``labels``."""
    value = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                value += sample.value
    return value


def _table(produced: int, target: int, pipeline: Pipeline, delivered: int, started: float) -> Table:
    registry = pipeline.metrics.registry
    elapsed = max(time.monotonic() - started, 1e-6)
    table = Table(title="forwarder demo", min_width=56)
    table.add_column("")
    table.add_column("events", justify="right")
    table.add_row("produced", f"{produced:,} / {target:,}")
    table.add_row("delivered to the sandbox", f"{delivered:,}")
    table.add_row(
        "retried (in process or via a tier)",
        f"{total(registry, 'forwarder_events_retried_total'):,.0f}",
    )
    table.add_row("HTTP requests", f"{total(registry, 'forwarder_http_requests_total'):,.0f}")
    limit = total(registry, "forwarder_concurrency_limit")
    mode = "adaptive" if pipeline.config.limits.adaptive else "fixed"
    table.add_row(
        f"requests in flight / limit ({mode})",
        f"{total(registry, 'forwarder_http_requests_in_flight'):.0f} / {limit:.0f}",
    )
    for reason in (*FRAMED_BAD_KINDS, "rejected", "retries_exhausted"):
        count = total(registry, "forwarder_events_dead_lettered_total", reason=reason)
        if count:
            table.add_row(f"dead-lettered: {reason}", f"{count:,.0f}")
    table.add_row("throughput", f"{delivered / elapsed:,.0f} events/s")
    table.add_row(
        "personalization answers published",
        f"{total(registry, 'forwarder_personalization_records_published_total'):,.0f}",
    )
    return table


async def _demo(
    events: int, bad_ratio: float, console: Console, workdir: Path, framed: bool = False
) -> int:
    console.print(
        "[bold]forwarder demo[/]: starting a local Kafka broker (the first run downloads it)..."
    )
    cluster = KafkaCluster(nodes=1)
    await asyncio.to_thread(cluster.start)
    sandbox = None
    schema_registry = LocalRegistry() if framed else None
    try:
        schema_ids = None
        if schema_registry is not None:
            console.print("starting a local schema registry (Apicurio; the first run downloads it)")
            await asyncio.to_thread(schema_registry.start)
            schema_ids = await register_schemas(schema_registry.url, TOPIC)
            console.print(f"schema registry at {schema_registry.url}, schema ids {schema_ids}")
        await create_topic(cluster.bootstrap_servers, TOPIC, 6)
        faults = Faults(errors=[ErrorRule(500, 1003, 0.02)])
        sandbox = await start_sandbox(SandboxConfig(port=0, rate=0, seed=1, faults=faults))
        console.print(
            f"Kafka at {cluster.bootstrap_servers}, sandbox at {sandbox.url} (2% of requests fail with 500/1003)"
        )
        env = {
            "TD_API_KEY": DEV_API_KEY,
            "TD_WP13N_TOKEN": DEV_TOKEN,
            "FORWARDER_KAFKA__BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
            "FORWARDER_KAFKA__TOPICS": TOPIC,
            "FORWARDER_ENDPOINT__URL": sandbox.url,
            "FORWARDER_BATCH__LINGER_MS": "100",
            "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
            **({"FORWARDER_REGISTRY__URL": schema_registry.url} if schema_registry else {}),
        }
        config_file = workdir / "forwarder.toml"
        config_file.write_text(personalization_toml(sandbox.url))
        await inject_personalization_faults(sandbox)
        config = load_config(config_file, env)
        pipeline = Pipeline(config, load_registry(config))
        generator = TrafficGenerator(
            seed=42,
            bad_ratio=bad_ratio,
            run_id=f"demo-{int(time.time())}",
            hot_users=0.01,
            schema_ids=schema_ids,
        )
        producing = asyncio.create_task(
            produce(cluster.bootstrap_servers, TOPIC, generator, events, rate=20_000)
        )
        running = asyncio.create_task(pipeline.run())
        started = time.monotonic()
        registry = pipeline.metrics.registry
        deadline = started + max(120.0, events / 500)
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                stats = sandbox.sandbox.recorder.stats()
                delivered = stats["distinct_uuids"]
                produced = events if producing.done() else generator.produced
                dead = total(registry, "forwarder_events_dead_lettered_total")
                live.update(_table(produced, events, pipeline, delivered, started))
                if producing.done() and delivered + dead >= events:
                    break
                if running.done() or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
        await drain_personalization(registry, total)
        pipeline.stop()
        await running
        await producing
        sent = producing.result()
        bad = sum(1 for g in sent if g.bad)
        delivered = sandbox.sandbox.recorder.stats()["distinct_uuids"]
        dead = int(total(registry, "forwarder_events_dead_lettered_total"))
        ok = delivered == len(sent) - bad and dead == bad
        verdict = "[green]every event accounted for[/]" if ok else "[red]some events are missing[/]"
        console.print()
        console.print(
            f"{verdict}: {delivered:,} delivered, {dead:,} dead-lettered ({bad:,} bad events produced)"
        )
        if schema_registry is not None:
            count = sum(1 for g in sent if g.value[:1] == b"\x00")
            console.print(
                f"  {count:,} events were framed (schema registry wire format) and forwarded as "
                f"JSON; {len(sent) - count:,} bare"
            )
        for line in await personalization_summary(cluster.bootstrap_servers, registry, total):
            console.print(line)
        console.print(f"  service answers: {dict(sandbox.sandbox.personalization.statuses)}")
        console.print(
            f"the local Kafka stops with the demo; against your own cluster, "
            f"`forwarder dlq stats` shows what is in {TOPIC}.dlq. Logs: {workdir / 'forwarder.log'}"
        )
        return 0 if ok else 1
    finally:
        if sandbox is not None:
            await sandbox.stop()
        if schema_registry is not None:
            await asyncio.to_thread(schema_registry.stop)
        await asyncio.to_thread(cluster.stop)


def run_demo(events: int = 50_000, bad_ratio: float = 0.03, framed: bool = False) -> int:
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="forwarder-demo-"))
    log = (workdir / "forwarder.log").open("w")
    configure_logging("info", "json", (), stream=log)
    try:
        return asyncio.run(_demo(events, bad_ratio, console, workdir, framed))
    finally:
        log.close()
