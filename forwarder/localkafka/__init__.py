"""A real Apache Kafka broker on loopback, from the jars on Maven Central, with no Docker.

Used by the test fixtures, ``forwarder demo`` and the benchmarks. ``ensure_kafka_jars`` fetches
``org.apache.kafka:kafka_2.13`` and its runtime dependencies with Maven into a cache outside the
repository (``$FORWARDER_CACHE_DIR`` or ``~/.cache/forwarder``); ``KafkaCluster`` formats KRaft
log directories in a temp folder and runs one combined broker+controller node, or three for
fault tests, on free 127.0.0.1 ports. Broker output goes to files in the work directory, never
to the caller's terminal. Java processes are killed at interpreter exit even after a failure.
``LocalRegistry`` is a schema registry the same way: Apicurio Registry from Maven Central
(``ensure_registry``), in memory, its Confluent-compatible API at ``url``.

Command line (a developer tool)::

    python -m forwarder.localkafka fetch          # fill the jar cache (setup step)
    python -m forwarder.localkafka run --nodes 1  # start, print bootstrap servers, Ctrl-C stops
    python -m forwarder.localkafka registry       # a schema registry, print its URL, Ctrl-C stops
"""

from forwarder.localkafka._admin import create_topic, wait_for_leaders
from forwarder.localkafka._cluster import KafkaCluster, free_port
from forwarder.localkafka._jars import KAFKA_VERSION, cache_dir, ensure_kafka_jars
from forwarder.localkafka._registry import REGISTRY_VERSION, LocalRegistry, ensure_registry

__all__ = [
    "KAFKA_VERSION",
    "REGISTRY_VERSION",
    "KafkaCluster",
    "LocalRegistry",
    "cache_dir",
    "create_topic",
    "ensure_kafka_jars",
    "ensure_registry",
    "free_port",
    "wait_for_leaders",
]
