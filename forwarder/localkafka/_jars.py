"""The Kafka broker jars (and the registry's, ``_registry``): fetched once from Maven Central
with Maven, cached outside the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

KAFKA_VERSION = "4.3.0"
# Kafka's slf4j 1.x API comes without a binding; these make its log4j2 output work.
SLF4J_VERSION = "2.0.17"
LOG4J_VERSION = "2.25.4"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.forwarder</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    return Path(os.environ.get("FORWARDER_CACHE_DIR") or Path.home() / ".cache" / "forwarder")


def cache_dir() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars() -> Path:
    """The directory of the broker's jars, downloading them once with Maven."""
    pom = _POM.format(kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION, log4j=LOG4J_VERSION)
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory=libs"]
    return cached_download(cache_dir(), f"Kafka {KAFKA_VERSION}", goal, pom) / "libs"


def cached_download(
    target: Path,
    what: str,
    maven_goal: list[str],
    pom: str | None = None,
    finish: Callable[[Path], None] | None = None,
) -> Path:
    """``target``, filled once by Maven running ``maven_goal`` in it (and ``finish``).

    The download goes to a temp directory renamed into place, and a marker file says the cache is
    complete, so an interrupted download never leaves a half cache behind.
    """
    if (target / "COMPLETE").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"Maven (mvn) is needed to fetch {what}; install it or fill the cache")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
    try:
        if pom is not None:
            (work / "pom.xml").write_text(pom)
        result = subprocess.run(
            [mvn, "-q", "-B", *maven_goal],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mvn could not fetch {what}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        if finish is not None:
            finish(work)
        (work / "COMPLETE").write_text(what)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target
