"""The I/O a pipeline drives, as one bundle: the real Kafka and HTTP adapters, or the tests'
in-memory fakes (``tests/fakes.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from forwarder.adapters.http_sink import HttpSink, Transport
from forwarder.adapters.kafka_common import list_topics
from forwarder.adapters.kafka_publisher import KafkaPublisher, ensure_topics
from forwarder.adapters.kafka_source import KafkaSource, Report
from forwarder.adapters.registry_client import RegistryClient
from forwarder.config import Config
from forwarder.core.topics import TopicMap
from forwarder.ports import Publisher, SchemaSource, Sink, Source
from forwarder.telemetry.retry_after_report import Report as RetryAfterReport
from forwarder.telemetry.retry_after_report import ignore


async def _no_topics() -> Sequence[str]:
    return ()


@dataclass
class Adapters:
    """The I/O the pipeline drives; ``prepare`` creates the retry and dead-letter topics,
    ``existing_topics`` lists the broker's topics (to find stranded retry tiers); ``registry``
    looks schema ids up (None without ``registry.url``)."""

    source: Source
    sink: Sink
    publisher: Publisher
    prepare: Callable[[], Awaitable[object]]
    existing_topics: Callable[[], Awaitable[Sequence[str]]] = _no_topics
    registry: SchemaSource | None = None

    @classmethod
    def real(
        cls,
        config: Config,
        topics: TopicMap,
        transport: Transport = "aiohttp",
        report: Report | None = None,
        retry_after_report: RetryAfterReport = ignore,
    ) -> Adapters:
        publisher = KafkaPublisher(config.kafka)
        return cls(
            KafkaSource(config.kafka, report=report) if report else KafkaSource(config.kafka),
            HttpSink(config.endpoint, config.limits, transport, retry_after_report),
            publisher,
            # The topics' limits go to the publisher, which fits every record to them.
            lambda: ensure_topics(
                config.kafka, topics.sources, topics.suffixes, publisher.topic_limits
            ),
            lambda: list_topics(config.kafka),
            RegistryClient(config.registry) if config.registry.url else None,
        )
