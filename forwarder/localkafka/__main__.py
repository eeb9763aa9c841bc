"""``python -m forwarder.localkafka fetch|run``: the local Kafka as a developer tool."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable

from forwarder.localkafka import __doc__ as PACKAGE_DOC
from forwarder.localkafka._cluster import KafkaCluster
from forwarder.localkafka._jars import KAFKA_VERSION, ensure_kafka_jars
from forwarder.localkafka._registry import REGISTRY_VERSION, LocalRegistry, ensure_registry
from forwarder.localkafka._secured import LISTENERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m forwarder.localkafka", description=(PACKAGE_DOC or "").splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the Kafka jars and the schema registry into the cache")
    sub.add_parser("registry", help="start a local schema registry (Apicurio) until Ctrl-C")
    run = sub.add_parser("run", help="start a local cluster until Ctrl-C")
    run.add_argument("--nodes", type=int, default=1, choices=(1, 3))
    run.add_argument(
        "--secured", action="store_true", help="TLS/SASL listeners, 1 node (docs/managed-kafka.md)"
    )
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(f"Kafka {KAFKA_VERSION} jars in {ensure_kafka_jars()}")
        print(f"Apicurio Registry {REGISTRY_VERSION} in {ensure_registry().parent}")
        return 0
    started = time.monotonic()
    if args.command == "registry":
        registry = LocalRegistry()
        registry.start()
        print(
            f"schema registry up in {time.monotonic() - started:.1f}s: {registry.url}", flush=True
        )
        _wait_for_a_signal(registry.stop)
        return 0
    cluster = KafkaCluster(nodes=args.nodes, secured=args.secured)
    cluster.start()
    print(
        f"Kafka {KAFKA_VERSION} up in {time.monotonic() - started:.1f}s: {cluster.bootstrap_servers}",
        flush=True,
    )
    print(f"broker logs: {', '.join(map(str, cluster.log_files))}", flush=True)
    if cluster.tls is not None:
        for name in LISTENERS:
            print(f"{name} listener: {cluster.listener(name)}", flush=True)
        print(f"certificates (PEM): {cluster.tls.ca.parent}", flush=True)
    _wait_for_a_signal(cluster.stop)
    return 0


def _wait_for_a_signal(stop: Callable[[], None]) -> None:
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
