"""How ``forwarder dlq`` shows its results: rich tables on a terminal, JSON for scripts."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from forwarder.commands.dlq import ReplayOptions, ReplaySummary, replay, stats
from forwarder.config import KafkaConfig
from forwarder.core.dead_letters import Stats


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def stats_table(topic: str, result: Stats) -> Table:
    table = Table(title=f"{topic}: {result.total:,} records", show_lines=True)
    for column in (
        "reason",
        "status",
        "code",
        "destination",
        "count",
        "oldest failed_at",
        "newest failed_at",
        "samples",
    ):
        table.add_column(column, justify="right" if column == "count" else "left", overflow="fold")
    for (reason, status, code, destination), group in sorted(
        result.groups.items(), key=lambda i: -i[1].count
    ):
        table.add_row(
            reason,
            status or "-",
            code or "-",
            destination or "-",
            f"{group.count:,}",
            _when(group.oldest),
            _when(group.newest),
            "\n".join(group.samples),
        )
    if result.foreign:
        table.add_row("(no forwarder headers)", "-", "-", "-", f"{result.foreign:,}", "-", "-", "")
    if result.truncated or result.compressed:
        table.caption = (
            f"{result.truncated:,} cut to fit the topic (replayed from their source while it "
            f"retains them), {result.compressed:,} compressed whole"
        )
    return table


def run_stats(config: KafkaConfig, topics: list[str], as_json: bool, samples: int) -> int:
    results = {topic: asyncio.run(stats(config, topic, samples)) for topic in topics}
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                {t: r.as_json() for t, r in results.items()}, option=orjson.OPT_INDENT_2
            ).decode()
            + "\n"
        )
        return 0
    # Piped into a file or a pager, a wide table beats one folded into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    for topic, result in results.items():
        console.print(stats_table(topic, result))
    return 0


def run_replay(config: KafkaConfig, options: ReplayOptions, as_json: bool) -> int:
    console = Console(stderr=True)
    if console.is_terminal and not as_json:
        columns = (
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} records/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("replay", total=None, rate="-")
            started = time.monotonic()

            def advance(done: int, total: int) -> None:
                elapsed = time.monotonic() - started
                rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=done, total=total, rate=rate)

            summary = asyncio.run(replay(config, options, advance))
    else:
        summary = asyncio.run(replay(config, options))
    show_summary(summary, options, as_json)
    return 1 if summary.failed else 0


def show_summary(summary: ReplaySummary, options: ReplayOptions, as_json: bool) -> None:
    if as_json:
        data = summary.as_json()
        data["progress_group"] = options.group_id
        if options.dry_run:
            data["would_replay"] = summary.preview.as_json()
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    if options.dry_run:
        console.print(stats_table(f"{options.topic} (dry run: would replay)", summary.preview))
    table = Table(
        title="replay summary" + (" (dry run, nothing changed)" if options.dry_run else "")
    )
    table.add_column("")
    table.add_column("records", justify="right")
    table.add_row("scanned", f"{summary.scanned:,}")
    table.add_row("selected", f"{summary.selected:,}")
    table.add_row("replayed", f"{summary.replayed:,}")
    for reason, count in sorted(summary.skipped.items()):
        table.add_row(f"skipped: {reason}", f"{count:,}")
    if summary.failed:
        table.add_row("[red]could not be replayed[/]", f"{summary.failed:,}")
    console.print(table)
    for note in summary.notes:
        console.print(note, markup=False, highlight=False)
    if not options.dry_run:
        console.print(f"progress saved in consumer group {options.group_id}")
