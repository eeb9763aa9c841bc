"""Command-line interface: parses options and calls into the package, nothing more."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Kafka to Treasure Data forwarder."
)


@app.callback()
def _root() -> None:
    """Kafka to Treasure Data forwarder."""


def main() -> None:
    app()
