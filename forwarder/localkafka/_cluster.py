"""KRaft nodes on free loopback ports: format, start, wait until they answer, stop, kill."""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from forwarder.localkafka._jars import ensure_kafka_jars
from forwarder.localkafka._secured import (
    LISTENERS,
    TlsFiles,
    add_scram_arguments,
    make_tls_files,
    secured_properties,
)

# Broker output goes to a file per node, never to the caller's terminal.
_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cluster_id() -> str:
    """A random Kafka cluster id (URL-safe base64 of 16 bytes).

    Drawn again when it starts with "-", as Kafka's own ``Uuid.randomUuid`` does: the storage
    tool would read such an id (1 draw in 64) as an option and refuse to format.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_all() -> None:
    for process in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    # Secured mode: listener name -> port (see _secured).
    secured_ports: dict[str, int] | None = None

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"


class KafkaCluster:
    """One (combined broker+controller) or three KRaft nodes on 127.0.0.1.

    ``secured=True`` (one node only) adds the TLS and SASL listeners of ``_secured`` beside the
    PLAINTEXT one; ``listener(name)`` gives their addresses and ``tls`` the PEM files.
    """

    def __init__(
        self,
        nodes: int = 1,
        heap_mb: int = 512,
        workdir: Path | None = None,
        secured: bool = False,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("nodes must be 1 or 3")
        if secured and nodes != 1:
            raise ValueError("the secured mode runs one node")
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="forwarder-kafka-"))
        self.heap_mb = heap_mb
        self.nodes = [
            _Node(i + 1, free_port(), free_port(), self.workdir / f"node{i + 1}")
            for i in range(nodes)
        ]
        if secured:
            self.nodes[0].secured_ports = {name: free_port() for name in LISTENERS}
        self.tls: TlsFiles | None = None
        self._libs: Path | None = None

    def listener(self, name: str) -> str:
        """``127.0.0.1:port`` of a secured listener (SCRAM, PLAIN, MTLS, OAUTH, WRONGHOST)."""
        ports = self.nodes[0].secured_ports
        if ports is None:
            raise ValueError("the cluster was not started in secured mode")
        return f"127.0.0.1:{ports[name]}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def log_files(self) -> list[Path]:
        return [n.log_file for n in self.nodes]

    def _properties(self, node: _Node) -> str:
        replication = min(3, len(self.nodes))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        quorum = (
            f"controller.quorum.bootstrap.servers=127.0.0.1:{node.controller_port}"
            if len(self.nodes) == 1
            else f"controller.quorum.voters={voters}"
        )
        extra = {name: f"127.0.0.1:{port}" for name, port in (node.secured_ports or {}).items()}
        advertised = ",".join(
            f"{name}://{address}"
            for name, address in {"PLAINTEXT": f"127.0.0.1:{node.port}", **extra}.items()
        )
        protocols = ",".join(f"{name}:{LISTENERS[name]}" for name in extra)
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                quorum,
                f"listeners={advertised},CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners={advertised}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
                + (f",{protocols}" if protocols else ""),
                *(secured_properties(self.tls) if self.tls and node.secured_ports else []),
                f"log.dirs={node.directory / 'data'}",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                f"offsets.topic.replication.factor={replication}",
                "offsets.topic.num.partitions=10",
                f"transaction.state.log.replication.factor={replication}",
                f"transaction.state.log.min.isr={min(2, replication)}",
                f"share.coordinator.state.topic.replication.factor={replication}",
                f"share.coordinator.state.topic.min.isr={min(2, replication)}",
                f"min.insync.replicas={min(2, replication)}",
                f"default.replication.factor={replication}",
                "group.initial.rebalance.delay.ms=0",
                # Fault tests kill nodes: notice a dead broker in seconds, not the default 9 s.
                "broker.session.timeout.ms=4000",
                "broker.heartbeat.interval.ms=500",
                "log.flush.interval.messages=9223372036854775807",
                "",
            ]
        )

    def _java(self, *args: str, node: _Node) -> list[str]:
        assert self._libs is not None
        return [
            "java",
            f"-Xms{self.heap_mb // 2}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.directory}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _format(self) -> None:
        cluster_id = _cluster_id()
        if self.nodes[0].secured_ports is not None:
            self.tls = make_tls_files(self.workdir / "tls")
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            (node.directory / "server.properties").write_text(self._properties(node))
            (node.directory / "log4j2.properties").write_text(
                _LOG4J2.format(log_file=node.log_file)
            )
            extra = ["--standalone"] if len(self.nodes) == 1 else []
            if node.secured_ports is not None:
                extra += add_scram_arguments()
            command = self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(node.directory / "server.properties"),
                *extra,
                node=node,
            )
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"formatting node {node.node_id} failed: {result.stdout}{result.stderr}"
                )

    def start(self, timeout: float = 120.0) -> None:
        self._libs = ensure_kafka_jars()
        self._format()
        for index in range(len(self.nodes)):
            self.start_node(index, wait=False)
        self.wait_ready(timeout)

    def start_node(self, index: int, wait: bool = True, timeout: float = 60.0) -> None:
        node = self.nodes[index]
        with (node.directory / "stdout.log").open("ab") as out:
            node.process = subprocess.Popen(
                self._java("kafka.Kafka", str(node.directory / "server.properties"), node=node),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _LIVE.add(node.process)
        if wait:
            self.wait_ready(timeout, nodes=[node])

    def wait_ready(self, timeout: float, nodes: list[_Node] | None = None) -> None:
        """Wait until every node answers a metadata request, or raise with the log's tail."""
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while True:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"Kafka node {node.node_id} exited: {self._tail(node)}")
                if _answers_metadata(f"127.0.0.1:{node.port}"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Kafka node {node.node_id} not ready in {timeout}s: {self._tail(node)}"
                    )
                time.sleep(0.2)

    def _tail(self, node: _Node) -> str:
        text = ""
        for path in (node.directory / "stdout.log", node.log_file):
            if path.exists():
                text += path.read_text(errors="replace")[-1500:]
        return text

    def kill_node(self, index: int) -> None:
        """SIGKILL one node: the crash a fault test wants."""
        node = self.nodes[index]
        if node.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
            _LIVE.discard(node.process)
            node.process = None

    def stop_node(self, index: int, timeout: float = 20.0) -> None:
        node = self.nodes[index]
        process = node.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_node(index)
            return
        _LIVE.discard(process)
        node.process = None

    def stop(self) -> None:
        # Controlled shutdown of a lone controller can wait on a quorum that is gone: a short
        # grace, then SIGKILL. The data is thrown away anyway.
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for index, node in enumerate(self.nodes):
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
                _LIVE.discard(node.process)
                node.process = None
            except subprocess.TimeoutExpired:
                self.kill_node(index)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers_metadata(bootstrap: str) -> bool:
    """True when the broker serves a metadata request (run on a private loop and thread)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        # A plain connect first: aiokafka logs every refused connection at error level.
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    result: list[bool] = []

    def probe() -> None:
        result.append(asyncio.run(_probe(bootstrap)))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(15)
    return bool(result and result[0])


async def _probe(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()
