"""Command-line interface: parses options and calls into the package, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer

from forwarder.errors import ForwarderError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Kafka to Treasure Data forwarder."
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the configuration.")
app.add_typer(config_app, name="config")
dlq_app = typer.Typer(no_args_is_help=True, help="Inspect and replay dead-letter topics.")
app.add_typer(dlq_app, name="dlq")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (env FORWARDER_* overrides it)."),
]


def _fail(exc: ForwarderError) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Forward events until SIGTERM or SIGINT."""
    from forwarder.engine.stop_signals import StopSignals

    # Before anything is read (even the service's imports): an early SIGTERM exits 0.
    signals = StopSignals().install()
    from forwarder.engine.service import run as run_service

    try:
        run_service(str(config) if config else None, signals)
    except ForwarderError as exc:
        _fail(exc)


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file + environment), secrets redacted."""
    from forwarder.config import load_config, redacted

    try:
        loaded = load_config(config)
    except ForwarderError as exc:
        _fail(exc)
        return
    typer.echo(orjson.dumps(redacted(loaded), option=orjson.OPT_INDENT_2).decode())


OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write it to this file instead of standard output."),
]


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


@config_app.command("reference")
def config_reference(output: OutputOption = None) -> None:
    """Print the configuration reference from the config model (the repository's
    docs/configuration.md: `forwarder config reference -o docs/configuration.md`)."""
    from forwarder.config.reference import render_reference

    _write(render_reference(), output)


@config_app.command("schema")
def config_schema(output: OutputOption = None) -> None:
    """Print the JSON Schema of forwarder.toml, for editors (the repository's
    deploy/forwarder.schema.json: `forwarder config schema -o deploy/forwarder.schema.json`)."""
    from forwarder.config.reference import render_schema

    _write(render_schema(), output)


@app.command()
def validate(
    file: Annotated[
        Path, typer.Argument(help="Events one per line, bare JSON or framed ('-': standard input).")
    ],
    schemas: Annotated[Path | None, typer.Option(help="Extra schema directory.")] = None,
    config: ConfigOption = None,
) -> None:
    """Check a file of events against the schemas; print each failure with its JSON path.

    Framed values (a schema registry's wire format) are checked by their writer schema when
    registry.url is set (in --config or FORWARDER_REGISTRY__URL).
    """
    from forwarder.commands.validate import validate_file
    from forwarder.config import load_config

    try:
        loaded = load_config(config, need_secrets=False)
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        total, failures = validate_file(data, loaded, schemas)
    except ForwarderError as exc:
        _fail(exc)
        return
    for failure in failures:
        typer.echo(f"{file}:{failure.line}: {failure.reason}: {failure.detail}")
    typer.echo(f"{total - len(failures)} valid, {len(failures)} invalid")
    if failures:
        raise typer.Exit(1)


@app.command()
def traffic(
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="TRAFFIC_BOOTSTRAP_SERVERS", help="Kafka brokers.")
    ] = "localhost:9092",
    topic: Annotated[str, typer.Option(envvar="TRAFFIC_TOPIC")] = "clickstream",
    rate: Annotated[float, typer.Option(envvar="TRAFFIC_RATE", help="Events per second.")] = 100.0,
    count: Annotated[int, typer.Option(help="Events to produce (0: until interrupted).")] = 0,
    bad_ratio: Annotated[
        float, typer.Option(envvar="TRAFFIC_BAD_RATIO", help="Share of malformed events.")
    ] = 0.03,
    seed: int = 0,
    registry: Annotated[
        str | None,
        typer.Option(
            envvar="TRAFFIC_REGISTRY_URL",
            help="Schema registry URL (Confluent-compatible API): register the bundled schemas "
            "there and produce framed events (a tenth of the valid ones bare).",
        ),
    ] = None,
) -> None:
    """Produce realistic clickstream events (some malformed on purpose) to a topic."""
    import asyncio

    from forwarder.commands.traffic import TrafficGenerator, produce_forever, register_schemas

    try:
        ids = asyncio.run(register_schemas(registry, topic)) if registry else None
    except ForwarderError as exc:
        _fail(exc)
        return
    generator = TrafficGenerator(seed=seed, bad_ratio=bad_ratio, schema_ids=ids)
    try:
        produced = asyncio.run(
            produce_forever(bootstrap_servers, topic, generator, rate=rate, count=count)
        )
    except KeyboardInterrupt:
        return
    typer.echo(f"produced {produced} events to {topic}")


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8080,
    profile: Annotated[str, typer.Option(help="realtime or ingest")] = "realtime",
    api_key: Annotated[
        str | None, typer.Option(envvar="SANDBOX_API_KEY", help="Accepted API key.")
    ] = None,
    token: Annotated[
        list[str] | None, typer.Option(help="Accepted WP13n token (repeatable).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Requests per second (0: no limit).")] = 100.0,
    burst: int = 200,
    error: Annotated[
        list[str] | None, typer.Option(help="Inject STATUS[:CODE]=RATE, e.g. 500:1003=0.1.")
    ] = None,
    latency_ms: float = 0.0,
    hang_rate: float = 0.0,
    reset_rate: float = 0.0,
    receipts_fail_rate: float = 0.0,
    seed: int | None = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The PEM key of --tls-cert.")] = None,
    tls_test_cert: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with a new private CA and certificate written to this directory "
            "(needs the dev extra); point endpoint.ca_file at its sandbox-ca.pem."
        ),
    ] = None,
    personalization_rate: Annotated[
        float, typer.Option(help="Personalization requests/s (0: no limit).")
    ] = 100.0,
    personalization_burst_rate: float = 200.0,
    personalization_burst_seconds: float = 10.0,
) -> None:
    """Run a local HTTP server that behaves like the destination (docs/development.md)."""
    from forwarder.sandbox import ErrorRule, Faults, SandboxConfig, serve, write_test_certificate
    from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

    if profile not in ("realtime", "ingest"):
        raise typer.BadParameter("realtime or ingest", param_hint="--profile")
    chosen: Literal["realtime", "ingest"] = "realtime" if profile == "realtime" else "ingest"
    try:
        errors = [ErrorRule.parse(e) for e in error or []]
    except ValueError:
        raise typer.BadParameter(
            "use STATUS[:CODE]=RATE, e.g. 500:1003=0.1", param_hint="--error"
        ) from None
    faults = Faults(
        errors=errors,
        latency_ms=latency_ms,
        hang_rate=hang_rate,
        reset_rate=reset_rate,
        receipts_fail_rate=receipts_fail_rate,
    )
    if tls_test_cert is not None:
        ca_file, tls_cert, tls_key = write_test_certificate(tls_test_cert)
        typer.echo(f"sandbox CA (set endpoint.ca_file to it): {ca_file}")
    serve(
        SandboxConfig(
            tls_cert=str(tls_cert or ""),
            tls_key=str(tls_key or ""),
            host=host,
            port=port,
            profile=chosen,
            api_key=api_key or DEV_API_KEY,
            tokens=tuple(token or [DEV_TOKEN]),
            rate=rate,
            burst=burst,
            seed=seed,
            faults=faults,
            p13n_rate=personalization_rate,
            p13n_burst_rate=personalization_burst_rate,
            p13n_burst_seconds=personalization_burst_seconds,
        )
    )


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="How many events to produce.")] = 50_000,
    bad_ratio: Annotated[float, typer.Option(help="Share of bad events.")] = 0.03,
    registry: Annotated[
        bool,
        typer.Option(
            "--registry",
            help="Also a local schema registry: the traffic framed in its wire format.",
        ),
    ] = False,
) -> None:
    """Local Kafka + sandbox + traffic + forwarder, with a live display and a summary."""
    from forwarder.commands.demo import run_demo

    try:
        raise typer.Exit(run_demo(events, bad_ratio, registry))
    except ForwarderError as exc:
        _fail(exc)


def _dlq_setup(config: Path | None, topic: list[str] | None) -> tuple[Any, list[str]]:
    from forwarder.config import load_config
    from forwarder.core.topics import dlq_topic

    loaded = load_config(config, need_secrets=False)
    return loaded, list(topic or [dlq_topic(t) for t in loaded.kafka.topics])


@dlq_app.command("stats")
def dlq_stats(
    config: ConfigOption = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Dead-letter topic (default: <topic>.dlq of each source)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    samples: Annotated[int, typer.Option(help="Sample events per group.")] = 3,
) -> None:
    """Counts by reason, status, code and destination, with time range and samples."""
    from forwarder.commands.dlq_report import run_stats

    try:
        loaded, topics = _dlq_setup(config, topic)
        raise typer.Exit(run_stats(loaded.kafka, topics, json, samples))
    except ForwarderError as exc:
        _fail(exc)


@dlq_app.command("replay")
def dlq_replay(
    config: ConfigOption = None,
    topic: Annotated[
        str | None, typer.Option(help="Dead-letter topic (default: <first source>.dlq).")
    ] = None,
    reason: Annotated[
        list[str] | None, typer.Option(help="Select this reason (repeatable).")
    ] = None,
    status: Annotated[
        list[int] | None, typer.Option(help="Select this HTTP status (repeatable).")
    ] = None,
    code: Annotated[
        list[int] | None, typer.Option(help="Select this endpoint code (repeatable).")
    ] = None,
    destination: Annotated[
        list[str] | None, typer.Option(help="Select this database.table (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="failed_at at or after this ISO 8601 time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="failed_at at or before this ISO 8601 time.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many records.")] = None,
    to: Annotated[
        str | None, typer.Option(help="Replay to this topic instead of the original one.")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            help="Progress consumer group (default: <group_id>.replay.<digest of the selection>,"
            " one per combination of filters, --to and --revalidate)."
        ),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Rescan, ignoring saved progress.")
    ] = False,
    revalidate: Annotated[
        bool, typer.Option("--revalidate", help="Skip events the current schemas reject.")
    ] = False,
    rate: Annotated[float, typer.Option(help="Records per second (0: no limit).")] = 0.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Re-produce selected dead letters to their original topic, resumably and loss-free."""
    from forwarder.commands.dlq import ReplayOptions
    from forwarder.commands.dlq_report import run_replay
    from forwarder.core.dead_letters import Selection, parse_time, progress_group
    from forwarder.engine.service import load_registry

    try:
        selection = Selection(
            reasons=tuple(reason or ()),
            statuses=tuple(status or ()),
            codes=tuple(code or ()),
            destinations=tuple(destination or ()),
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(
            f"not an ISO 8601 time: {exc}", param_hint="--since/--until"
        ) from None
    try:
        loaded, topics = _dlq_setup(config, [topic] if topic else None)
        options = ReplayOptions(
            topic=topics[0],
            selection=selection,
            to=to,
            limit=limit,
            group_id=group
            or progress_group(
                f"{loaded.kafka.group_id}.replay", selection, to=to, revalidate=revalidate
            ),
            from_beginning=from_beginning,
            revalidate=load_registry(loaded) if revalidate else None,
            rate=rate,
            dry_run=dry_run,
        )
        raise typer.Exit(run_replay(loaded.kafka, options, json))
    except ForwarderError as exc:
        _fail(exc)


@app.command()
def personalize(
    service: Annotated[str, typer.Option("--service", help="A configured service's name.")],
    user_id: Annotated[str, typer.Option("--user-id", help="The user to ask about.")],
    config: ConfigOption = None,
    context: Annotated[
        list[str] | None, typer.Option("--context", help="key=value context field (repeatable).")
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="Use the service's /test endpoint (input_params).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Ask a personalization service about one user; print its answer as a table (or JSON)."""
    from forwarder.commands.personalize import personalize as ask
    from forwarder.config import load_config

    try:
        loaded = load_config(config, need_secrets=False)
        result = ask(loaded, service, user_id, context or (), test=test, as_json=json)
    except ForwarderError as exc:
        _fail(exc)
        return
    if result.output:
        typer.echo(result.output)
    if result.error:
        typer.secho(f"error: {result.error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(result.exit_code)


def main() -> None:
    app()
