"""A real schema registry on loopback: Apicurio Registry from Maven Central, with no Docker.

``io.apicurio:apicurio-registry-app`` (classifier ``all``, a tar.gz of a Quarkus runner jar and
its ``lib/``, about 146 MB unpacked) is fetched once with Maven into the cache beside the Kafka
jars and started with Java 17 on a free 127.0.0.1 port, with its default in-memory storage
(everything registered is gone when it stops). Its Confluent-compatible API, the one the
forwarder and Confluent's serializers speak, is under ``/apis/ccompat/v7``. It infers a
schema's type from its content: a JSON Schema should carry ``$schema``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from forwarder.localkafka._cluster import _LIVE, free_port
from forwarder.localkafka._jars import cache_root, cached_download

REGISTRY_VERSION = "2.6.13.Final"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"
_ARCHIVE = f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
RUNNER = f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
CCOMPAT_PATH = "/apis/ccompat/v7"


def _unpack(work: Path) -> None:
    archive = work / _ARCHIVE
    with tarfile.open(archive) as tar:
        tar.extractall(work / "app", filter="data")
    archive.unlink()


def ensure_registry() -> Path:
    """The registry's runner jar, downloading it once with Maven."""
    target = cache_root() / f"apicurio-registry-{REGISTRY_VERSION}"
    goal = ["dependency:copy", f"-Dartifact={_ARTIFACT}", "-DoutputDirectory=."]
    return cached_download(target, f"Apicurio Registry {REGISTRY_VERSION}", goal, None, _unpack) / (
        "app/" + RUNNER
    )


class LocalRegistry:
    """One Apicurio Registry on 127.0.0.1, in memory; ``url`` is its Confluent-compatible API."""

    def __init__(self, heap_mb: int = 256, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="forwarder-registry-"))
        self.heap_mb = heap_mb
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, timeout: float = 120.0) -> None:
        runner = ensure_registry()
        command = [
            "java",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            f"-Djava.io.tmpdir={self.workdir}",
            "-jar",
            str(runner),
        ]
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _LIVE.add(self.process)
        self.wait_ready(timeout)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/schemas/types", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Wait until the registry answers, or raise with its log's tail."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the registry exited: {self._tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the registry did not answer in {timeout}s: {self._tail()}")
            time.sleep(0.2)

    def _tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def stop(self) -> None:
        process = self.process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            _LIVE.discard(process)
            self.process = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
