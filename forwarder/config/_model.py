"""The configuration model: frozen dataclasses, one per TOML section, and ``Secret``.

Secrets are held in ``Secret``, whose ``str``/``repr`` never show the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

MAX_EVENTS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5_000_000
MAX_BYTES_PER_EVENT = 1_000_000

REGIONS = {
    "realtime": ("us01", "eu01", "ap01"),
    "ingest": ("us01", "eu01", "ap01", "ap02", "ap03"),
}
_HOSTS = {"realtime": "p13n.in.treasuredata.com", "ingest": "records.in.treasuredata.com"}
NAME = re.compile(r"^[a-z0-9_]{3,255}$")
TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
POLICY_ACTIONS = ("retry", "isolate", "split", "dead-letter", "pause")
POLICY_KEY = re.compile(r"^(transport|[1-5][0-9]{2}(:[0-9]{1,6})?)$")
DEFAULT_MAX_PENDING_BYTES = 160 * 1024 * 1024
SESSION_TIMEOUT_MS = 10_000
# Left of the rebalance timeout after the revoke drain: the commit of the revoked partitions.
REVOKE_COMMIT_MS = 5_000


class Secret:
    """A secret string: shown as ``'***'`` everywhere but through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


T = TypeVar("T")


def key(default: T, doc: str, *, shown: str = "") -> T:
    """A config key with its default and its one-line meaning (``docs/configuration.md``).

    ``shown``: the default as the reference shows it, when the value alone would mislead.
    """
    return field(default=default, metadata={"doc": doc, "shown": shown})


def required(doc: str) -> Any:
    return field(metadata={"doc": doc, "shown": "required"})


def secret(variable: str, doc: str) -> Secret:
    """A secret key: never read from the file, only from ``variable`` or ``variable_FILE``."""
    return field(default_factory=lambda: Secret(""), metadata={"doc": doc, "env": variable})


def section(cls: Callable[[], T], doc: str, *, key_name: str = "") -> T:
    """A section of the file; ``key_name`` names the keys of a free-form table."""
    return field(default_factory=cls, metadata={"doc": doc, "key": key_name})


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = key("localhost:9092", "brokers, `host:port[,host:port]`")
    topics: tuple[str, ...] = key(("clickstream",), "source topics (must exist)")
    group_id: str = key("forwarder", "consumer group shared by all replicas")
    client_id: str = key("forwarder", "Kafka client id")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = key(
        "PLAINTEXT", "how the brokers are reached: TLS, SASL, both or neither"
    )
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = key(
        "", "SASL mechanism, with a `SASL_*` security protocol"
    )
    sasl_username: str = key("", "SASL user (`PLAIN`, `SCRAM-*`)")
    sasl_password: Secret = secret("FORWARDER_KAFKA__SASL_PASSWORD", "SASL password")
    # TLS: the CA bundle that signed the brokers' certificates (empty: the system's), and a
    # client certificate and key for mutual TLS; the key's password only from the environment.
    ssl_cafile: str = key(
        "", "PEM bundle of the CA(s) that signed the brokers' certificates (empty: the system's)"
    )
    ssl_certfile: str = key("", "client certificate (PEM) for mutual TLS")
    ssl_keyfile: str = key("", "its private key (PEM; may be encrypted)")
    ssl_key_password: Secret = secret(
        "FORWARDER_KAFKA__SSL_KEY_PASSWORD", "password of `ssl_keyfile`"
    )
    ssl_check_hostname: bool = key(
        True, "check that the broker certificate names the host; `false` only for tests"
    )
    # OAUTHBEARER: a token file (re-read when it changes, as a sidecar refreshes it), or an
    # OIDC client-credentials token endpoint with a client id and a secret from the environment.
    oauth_token_file: str = key(
        "", "`OAUTHBEARER`: file holding the token, re-read when it changes"
    )
    oauth_token_url: str = key(
        "", "`OAUTHBEARER`: OIDC token endpoint (client-credentials grant), instead of a file"
    )
    oauth_client_id: str = key("", "client id for `oauth_token_url`")
    oauth_client_secret: Secret = secret(
        "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET", "client secret for `oauth_token_url`"
    )
    oauth_scope: str = key("", "`scope` of the token request, when the identity provider wants one")
    auto_offset_reset: Literal["earliest", "latest"] = key("earliest", "where a new group starts")
    # Backpressure: a partition with this many records not yet done is paused.
    max_pending_per_partition: int = key(
        5_000, "records in flight per partition before it is paused (bounded memory)"
    )
    # ... and every partition while the records not yet done hold this many bytes (value and
    # request body per record, see forwarder.core.offsets.record_bytes), per process: sized for
    # the 512 MiB pod limit of deploy/kubernetes.
    max_pending_bytes: int = key(
        DEFAULT_MAX_PENDING_BYTES,
        "bytes held by records read but not yet done, per process (value + request body + "
        "~660 B per record); above it every partition pauses until half is freed. The default "
        "keeps a replica under the 512 MiB pod limit of `deploy/kubernetes`; scale it with the "
        "limit, keeping ~200 MiB for the rest",
        shown="167772160 (160 MiB)",
    )
    commit_interval_ms: int = key(
        1_000, "how often done offsets are committed (each commit bounded to 10 s)"
    )
    fetch_max_records: int = key(5_000, "records per fetch")
    # The group coordinator waits this long for a member to rejoin after a rebalance started;
    # the member's drain of its revoked partitions (revoke_drain_ms) and its last commit must
    # fit in it, or it is expelled and that commit fails.
    rebalance_timeout_ms: int = key(
        30_000,
        "how long the group coordinator waits for this member to rejoin after a rebalance "
        "starts (at least the 10 s session timeout)",
    )
    revoke_drain_ms: int = key(
        20_000,
        "how long a rebalance waits for the revoked partitions' events in flight, leaving 5 s "
        "of `rebalance_timeout_ms` for the commit; past it their queued events are dropped "
        "(the new owner reads them)",
    )


@dataclass(frozen=True)
class EndpointConfig:
    profile: Literal["realtime", "ingest"] = key(
        "realtime",
        "`realtime` (`*.p13n.in.treasuredata.com`, needs the WP13n token) or `ingest` "
        "(`*.records.in.treasuredata.com`)",
    )
    region: str = key("us01", "realtime: `us01`, `eu01`, `ap01`; ingest also `ap02`, `ap03`")
    url: str = key("", "overrides the base URL (sandbox, proxy); `http://` only for loopback hosts")
    database: str = key("clickstream", "database of the default route (`<database>.<event_type>`)")
    timeout_s: float = key(10.0, "per-request timeout")
    # Plain http to a non-loopback host sends the API key in clear: only for a sandbox on a
    # private network (docker-compose), never for the real endpoint.
    allow_plain_http: bool = key(
        False,
        "permit `http://` to a non-loopback host (a sandbox on a private network, as in "
        "`docker-compose.yml`); never for the real endpoint",
    )
    # A private CA bundle (PEM) to trust instead of the system's, e.g. an egress proxy that
    # re-signs TLS; and an explicit proxy URL (else HTTPS_PROXY / NO_PROXY are honoured).
    ca_file: str = key(
        "", "PEM bundle to trust instead of the system's (a private CA, a re-signing egress proxy)"
    )
    proxy: str = key(
        "",
        "proxy URL (`http://host:port`); empty: `HTTPS_PROXY`/`HTTP_PROXY` by the endpoint's "
        "scheme, unless `NO_PROXY` matches the host",
    )
    api_key: Secret = secret("TD_API_KEY", "the Treasure Data API key")
    wp13n_token: Secret = secret("TD_WP13N_TOKEN", "the WP13n token (`account/instance/token`)")

    @property
    def base_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.region}.{_HOSTS[self.profile]}"


@dataclass(frozen=True)
class BatchConfig:
    max_events: int = key(MAX_EVENTS_PER_REQUEST, "events per request (1-500)")
    max_bytes: int = key(4_000_000, "request body bytes (1 MB-5 MB)")
    linger_ms: int = key(200, "longest wait for a batch to fill")


@dataclass(frozen=True)
class LimitsConfig:
    # A number of concurrent requests, or "adaptive": found by AIMD (forwarder.core.concurrency)
    # between 1 and adaptive_max.
    max_in_flight: int | Literal["adaptive"] = key(
        8, 'concurrent requests: a number, or `"adaptive"` to find the endpoint\'s capacity'
    )
    adaptive_max: int = key(
        64,
        'with `max_in_flight = "adaptive"`: the most requests in flight (1-1024; also the '
        "senders and connections kept)",
    )
    requests_per_second: float = key(
        100.0, "token-bucket rate shared by all requests (0: no limit)"
    )
    burst: int = key(200, "token-bucket size")
    # The share of max_in_flight a degraded destination (failing while others work) may hold.
    destination_share: float = key(
        0.5,
        "share of `max_in_flight` (of the current limit when adaptive) a failing table may "
        "hold (and any table while another table's batch waits)",
    )

    @property
    def adaptive(self) -> bool:
        return self.max_in_flight == "adaptive"

    @property
    def in_flight_ceiling(self) -> int:
        """The most requests ever in flight: the senders and connections to keep."""
        fixed = self.max_in_flight
        return fixed if isinstance(fixed, int) else self.adaptive_max


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = key(3, "tries in process before a retry tier")
    backoff_initial_ms: int = key(200, "first backoff window (full jitter, doubling)")
    backoff_max_ms: int = key(10_000, "backoff cap")
    tiers: tuple[float, ...] = key(
        (5.0, 30.0, 300.0), "delay (s) of each retry topic `<topic>.retry.<n>`; `[]` for none"
    )
    # The longest Retry-After honoured: the endpoint's answer holds every request back.
    max_retry_after_s: float = key(
        300.0,
        "longest `Retry-After` honoured (1-3600): a longer one holds the endpoint (or a "
        "personalization service) back only this long, logged as `retry_after_capped`",
    )


@dataclass(frozen=True)
class HealthConfig:
    """When the endpoint counts as down, how it is probed, how the catch-up ramps up."""

    down_after_failures: int = key(
        10,
        "failed requests (5xx, 408, timeouts, transport errors, throttling) from two batches "
        "or more, nothing working since the first, after which the endpoint is `down`...",
    )
    down_after_s: float = key(
        5.0,
        "...provided they span this many seconds (or twice this, whatever their count); also "
        "how long a table fails while others work before it is `degraded`, and half of how "
        "long a batch failing alone holds before taking a tier",
    )
    probe_interval_s: float = key(1.0, "first wait between probes while down or paused (doubling)")
    probe_interval_max_s: float = key(
        3.0, "cap of the probe interval: recovery is noticed within this"
    )
    probe_events: int = key(10, "events in a probe (a small real batch)")
    ramp_s: float = key(
        10.0, "after recovery, concurrency climbs from 1 to `limits.max_in_flight` over this time"
    )
    # A retry or dead-letter topic failing writes this long turns /readyz not ready.
    publish_unready_after_s: float = key(
        60.0, "`/readyz` turns 503 when writes to a retry or dead-letter topic fail this long"
    )


@dataclass(frozen=True)
class SchemasConfig:
    # Extra schema directory; its event types add to or override the bundled ones.
    dir: str = key("", "extra schema directory: adds or overrides event types")


@dataclass(frozen=True)
class RegistryConfig:
    """A schema registry with the Confluent-compatible REST API, for framed events."""

    url: str = key(
        "",
        "schema registry with the Confluent-compatible API, for framed events; empty: framed "
        "events are validated against the local schemas only",
    )
    username: str = key("", "basic-auth user (Confluent Cloud: the registry API key)")
    password: Secret = secret(
        "FORWARDER_REGISTRY__PASSWORD", "basic-auth password (Confluent Cloud: the API secret)"
    )
    ca_file: str = key("", "PEM bundle to trust for the registry instead of the system's")
    proxy: str = key(
        "",
        "proxy URL; empty: `HTTPS_PROXY`/`HTTP_PROXY` for the registry's host unless "
        "`NO_PROXY` matches it",
    )
    timeout_s: float = key(5.0, "per-request timeout of a schema lookup")
    backoff_max_s: float = key(
        10.0, "while lookups fail they are retried from 1 s, doubling up to this"
    )
    local_schemas: bool = key(
        False,
        "`true`: a framed event must also pass the local schema of its `event_type`; "
        "`false`: its writer schema alone validates it, and its `event_type` must have a "
        "local schema or a `[routes]` entry",
    )


@dataclass(frozen=True)
class OpsConfig:
    host: str = key("0.0.0.0", "address of `/metrics`, `/healthz`, `/readyz`")
    port: int = key(9108, "port of `/metrics`, `/healthz`, `/readyz`")
    shutdown_timeout_s: float = key(
        30.0,
        "the whole shutdown: waiting for in-flight events (all but the last 5 s, or a third), "
        "the final commit and leaving the group",
    )
    log_level: Literal["debug", "info", "warning", "error"] = key(
        "info", "least severe level logged"
    )
    log_format: Literal["auto", "json", "console"] = key(
        "auto", "`auto`: console on a terminal, else JSON"
    )


PERSONALIZATION_REGIONS = ("us01", "jp01", "eu01")


@dataclass(frozen=True)
class PersonalizationService:
    """One ``[[personalization.services]]`` entry (design.md section 7)."""

    name: str = field(metadata={"doc": "the service name of the API path", "shown": "required"})
    parent_segment_id: str = field(
        metadata={"doc": "the parent segment (audience) id", "shown": "required"}
    )
    # Resolved at load time: the default is ``<first source topic>.personalization.<name>``.
    topic: str = field(
        metadata={
            "doc": "output topic (created like the tier topics)",
            "shown": '"<first source topic>.personalization.<name>"',
        }
    )
    triggers: tuple[str, ...] = field(
        metadata={"doc": "event types that trigger a call", "shown": "required"}
    )
    region: str = key(
        "us01", "`us01`, `jp01`, `eu01`: the service at `https://<region>.cdp.treasuredata.com`"
    )
    url: str = key(
        "",
        "a base URL instead of the region's (`http://` only for loopback, or with "
        "`endpoint.allow_plain_http`)",
    )
    user_field: str = key(
        "user_id", "event field holding the user (`td_client_id` for anonymous users)"
    )
    context: Mapping[str, str] = field(
        default_factory=dict,
        metadata={"doc": "request field = event field, sent along when the event has it"},
    )
    cache_ttl_s: float = key(
        60.0,
        "answer cache per (user, context), 0 off, at most 300; an answer can miss what the "
        "user did in the last `cache_ttl_s`",
    )
    cache_max_entries: int = key(10_000, "cache size (least recently used out first)")
    requests_per_second: float = key(100.0, "sustained rate")
    burst_per_second: float = key(200.0, "rate while the burst reserve lasts")
    burst_seconds: float = key(10.0, "how long a full reserve lasts at `burst_per_second`")
    max_in_flight: int = key(8, "concurrent requests (and worker tasks)")
    timeout_s: float = key(2.0, "per-request timeout")
    max_age_s: float = key(
        30.0, "a trigger not asked about within this long after its ingest is dropped"
    )
    queue_max_entries: int = key(
        10_000, "pending triggers (one per user); full: the oldest is dropped"
    )
    fallback_outputs: Mapping[str, Any] = field(
        default_factory=dict,
        metadata={"doc": "outputs published with section `fallback` when the service fails"},
    )
    ca_file: str = key(
        "",
        "PEM bundle to trust for this service (a private CA, a re-signing egress proxy)",
        shown="`endpoint.ca_file`",
    )
    proxy: str = key(
        "",
        "proxy URL; empty: `HTTPS_PROXY`/`HTTP_PROXY` for this service's host unless "
        "`NO_PROXY` matches it",
    )

    @property
    def base_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.region}.cdp.treasuredata.com"

    @property
    def path(self) -> str:
        return f"/audiences/{self.parent_segment_id}/personalization/{self.name}"


@dataclass(frozen=True)
class PersonalizationConfig:
    services: tuple[PersonalizationService, ...] = key(
        (), "the services asked about each accepted trigger event"
    )
    api_key: Secret = secret(
        "TD_PERSONALIZATION_API_KEY", "a key with CDP access; default: `TD_API_KEY`"
    )


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = section(
        KafkaConfig, "The source: brokers, topics, the consumer group, security, backpressure."
    )
    endpoint: EndpointConfig = section(EndpointConfig, "The Treasure Data ingest endpoint.")
    routes: Mapping[str, str] = section(
        dict,
        '`"database.table"` for an event type; default: `<endpoint.database>.<event_type>`',
        key_name="<event_type>",
    )
    batch: BatchConfig = section(BatchConfig, "How events are grouped into requests.")
    limits: LimitsConfig = section(LimitsConfig, "How many requests, how fast.")
    retry: RetryConfig = section(RetryConfig, "Retries in process, then the retry tier topics.")
    health: HealthConfig = section(
        HealthConfig, "When the endpoint counts as down, how it is probed, how catch-up ramps up."
    )
    schemas: SchemasConfig = section(SchemasConfig, "The event schemas.")
    ops: OpsConfig = section(OpsConfig, "The operations server and the logs.")
    # "status" or "status:code" -> action name; see forwarder.core.classify.
    policy: Mapping[str, str] = section(
        dict,
        "the action for a status or status:code, overriding the default routing: `retry`, "
        '`isolate`, `split`, `dead-letter`, `pause`; `"transport"` for connection errors and '
        "timeouts",
        key_name='"<status>[:<code>]"',
    )
    personalization: PersonalizationConfig = section(
        PersonalizationConfig,
        "Personalization activation: a Treasure Data personalization service asked about the "
        "user of each accepted trigger event, its answer published to a Kafka topic.",
    )
    registry: RegistryConfig = section(
        RegistryConfig,
        "A schema registry with the Confluent-compatible REST API, for framed events.",
    )

    def destination_for(self, event_type: str) -> str:
        """``database.table`` for an event type: its route, else the default database."""
        route = self.routes.get(event_type)
        return route if route else f"{self.endpoint.database}.{event_type}"


def is_destination(text: str) -> bool:
    """``database.table`` with both names valid."""
    database, dot, table = text.partition(".")
    return bool(dot) and bool(NAME.match(database)) and bool(NAME.match(table))


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets shown as ``***`` (or empty)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Secret):
            return "***" if value else ""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        if isinstance(value, Mapping):
            return {k: convert(v) for k, v in value.items()}
        return value

    result: dict[str, Any] = convert(config)
    return result
