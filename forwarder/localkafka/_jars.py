"""The Kafka broker jars: fetched once from Maven Central with Maven, cached outside the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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


def cache_dir() -> Path:
    root = os.environ.get("FORWARDER_CACHE_DIR") or Path.home() / ".cache" / "forwarder"
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars() -> Path:
    """The directory of the broker's jars, downloading them once with Maven.

    The download goes to a temp directory renamed into place, and a marker file says the cache is
    complete, so an interrupted download never leaves a half cache behind.
    """
    target = cache_dir()
    libs = target / "libs"
    if (target / "COMPLETE").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "Maven (mvn) is needed to fetch the Kafka jars; install it or fill the cache"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kafka-jars-", dir=target.parent))
    try:
        (work / "pom.xml").write_text(
            _POM.format(kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION, log4j=LOG4J_VERSION)
        )
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                "-DoutputDirectory=libs",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mvn could not fetch Kafka {KAFKA_VERSION}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        (work / "COMPLETE").write_text(KAFKA_VERSION)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return libs
