"""Prometheus metrics: prefix ``forwarder_``, units in names, low-cardinality labels only.

One ``Metrics`` per pipeline, each with its own registry, so tests can run several pipelines
in one process. Labels are bounded sets: destinations come from config routes, reasons,
statuses and codes from fixed tables; never an event field or a key.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "forwarder_events_consumed", "Records read from Kafka", ["topic"], registry=r
        )
        self.forwarded = Counter(
            "forwarder_events_forwarded",
            "Events accepted by the endpoint",
            ["destination"],
            registry=r,
        )
        self.retried = Counter(
            "forwarder_events_retried",
            "Events sent again: tier 0 in process, n on topic <topic>.retry.<n>",
            ["tier", "status", "code"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "forwarder_events_dead_lettered",
            "Events written to a dead-letter topic",
            ["reason", "status", "code"],
            registry=r,
        )
        self.requests = Counter(
            "forwarder_http_requests",
            "HTTP requests to the endpoint by outcome",
            ["status", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "forwarder_http_request_duration_seconds",
            "HTTP request duration",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_events = Histogram(
            "forwarder_batch_size_events",
            "Events per request",
            buckets=(1, 5, 10, 25, 50, 100, 200, 300, 400, 500),
            registry=r,
        )
        self.in_flight = Gauge(
            "forwarder_http_requests_in_flight", "Requests in flight", registry=r
        )
        self.concurrency_limit = Gauge(
            "forwarder_concurrency_limit",
            "Requests allowed in flight: limits.max_in_flight, or the adaptive limit",
            registry=r,
        )
        self.request_rtt_mean = Gauge(
            "forwarder_request_rtt_mean_seconds",
            "Moving mean of the requests' round-trip time (adaptive concurrency only)",
            registry=r,
        )
        self.paused = Gauge(
            "forwarder_paused", "1 while paused on a systemic endpoint fault", ["code"], registry=r
        )
        self.lag = Gauge(
            "forwarder_consumer_lag_records",
            "Records behind the log end",
            ["topic", "partition"],
            registry=r,
        )
        self.oldest_pending_age = Gauge(
            "forwarder_oldest_uncommitted_record_age_seconds",
            "Age of the oldest record not yet done",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "forwarder_commit_duration_seconds",
            "Offset commit latency",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.isolated = Counter(
            "forwarder_events_isolated",
            "Events found bad by splitting a rejected batch",
            registry=r,
        )
        self.isolation_requests = Counter(
            "forwarder_isolation_extra_requests",
            "Extra requests spent splitting rejected batches",
            registry=r,
        )
        self.endpoint_state = Gauge(
            "forwarder_endpoint_state",
            "1 for the endpoint's current health state: healthy, degraded, down or paused",
            ["state"],
            registry=r,
        )
        self.destination_state = Gauge(
            "forwarder_destination_state",
            "1 for a destination's current state: healthy, failing (nothing else works either) "
            "or degraded (failing while other destinations work); destinations are the routes "
            "and event types the schemas allow, a bounded set",
            ["destination", "state"],
            registry=r,
        )
        self.probes = Counter(
            "forwarder_endpoint_probes",
            "Probe requests sent while the endpoint was down or paused, by what they found",
            ["result"],
            registry=r,
        )
        self.publish_failures = Counter(
            "forwarder_publish_failures",
            "Failed writes to retry-tier and dead-letter topics (each is retried)",
            ["topic", "error"],
            registry=r,
        )
        self.records_fitted = Counter(
            "forwarder_records_fitted",
            "Dead-letter and tier records made to fit their topic's limit: compressed, truncated "
            "(value cut), trimmed (tier record without producer headers or key), dead_lettered "
            "(a tier record that could not fit)",
            ["topic", "how"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "forwarder_kafka_errors",
            "Failed consumer calls (fetch, commit, end_offsets) by the client's error class",
            ["operation", "error"],
            registry=r,
        )
        self.pending_bytes = Gauge(
            "forwarder_pending_bytes",
            "Bytes held by records read but not yet done (bounded by kafka.max_pending_bytes)",
            registry=r,
        )
        self.revoked_dropped = Counter(
            "forwarder_revoked_events_dropped",
            "Events of revoked partitions dropped unsent once the revoke drain budget was spent",
            registry=r,
        )
        self.dropped_unassigned = Counter(
            "forwarder_records_dropped_unassigned",
            "Records fetched for a partition revoked before they were taken (its new owner reads them)",
            ["topic"],
            registry=r,
        )
        self.internal_errors = Counter(
            "forwarder_internal_errors",
            "Unexpected exceptions (bugs) caught in a task; each is logged with its traceback",
            ["task"],
            registry=r,
        )
        self.retry_after_unreadable = Counter(
            "forwarder_retry_after_unreadable",
            "Retry-After headers that were neither delta seconds nor an HTTP date (ignored)",
            ["source"],
            registry=r,
        )
        # The schema registry of framed events (``forwarder.engine.schema_gate``).
        self.registry_lookups = Counter(
            "forwarder_registry_lookups",
            "Schema lookups in the registry by result: found, not_found, or why it failed "
            "(unauthorized, timeout, connection, status, answer)",
            ["result"],
            registry=r,
        )
        self.registry_waiting = Gauge(
            "forwarder_registry_waiting_partitions",
            "Partitions waiting (paused) until the schema ids they need are looked up",
            registry=r,
        )
        self.registry_unavailable = Gauge(
            "forwarder_registry_unavailable",
            "1 while the schema registry fails lookups (down, slow, refusing the credentials)",
            registry=r,
        )
        self.registry_schemas = Gauge(
            "forwarder_registry_schemas_cached", "Writer schemas compiled and cached", registry=r
        )
        # Personalization activation (design.md section 7); ``service`` is a configured name.
        self.p13n_requests = Counter(
            "forwarder_personalization_requests",
            "Requests to a personalization service by outcome (status, timeout or transport)",
            ["service", "status"],
            registry=r,
        )
        self.p13n_request_seconds = Histogram(
            "forwarder_personalization_request_duration_seconds",
            "Personalization request duration",
            ["service"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.p13n_cache = Counter(
            "forwarder_personalization_cache_lookups",
            "Answer cache lookups by result (hit, miss)",
            ["service", "result"],
            registry=r,
        )
        self.p13n_coalesced = Counter(
            "forwarder_personalization_coalesced",
            "Triggers answered by joining an identical request in flight",
            ["service"],
            registry=r,
        )
        self.p13n_dropped = Counter(
            "forwarder_personalization_triggers_dropped",
            "Triggers dropped without an answer, by cause",
            ["service", "cause"],
            registry=r,
        )
        self.p13n_fallbacks = Counter(
            "forwarder_personalization_fallbacks",
            "Fallback records published after the service failed",
            ["service"],
            registry=r,
        )
        self.p13n_published = Counter(
            "forwarder_personalization_records_published",
            "Records published to a service's output topic, by source",
            ["service", "source"],
            registry=r,
        )
        self.p13n_sections = Counter(
            "forwarder_personalization_sections",
            "Answers by section (the first 20 names seen per service, then other)",
            ["service", "section"],
            registry=r,
        )
        self.p13n_misconfigured = Gauge(
            "forwarder_personalization_misconfigured",
            "1 while a service answers 401 or 404: not called, probed with backoff",
            ["service"],
            registry=r,
        )
        self.p13n_queue = Gauge(
            "forwarder_personalization_queue_triggers",
            "Triggers pending for a service",
            ["service"],
            registry=r,
        )
        self.p13n_errors = Counter(
            "forwarder_personalization_internal_errors",
            "Bugs caught in the activation path (logged); ingestion is unaffected",
            registry=r,
        )
