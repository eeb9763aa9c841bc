"""The configuration model: frozen dataclasses, one per TOML section, and ``Secret``.

Secrets are held in ``Secret``, whose ``str``/``repr`` never show the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    topics: tuple[str, ...] = ("clickstream",)
    group_id: str = "forwarder"
    client_id: str = "forwarder"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = ""
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    # TLS: the CA bundle that signed the brokers' certificates (empty: the system's), and a
    # client certificate and key for mutual TLS; the key's password only from the environment.
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_check_hostname: bool = True
    # OAUTHBEARER: a token file (re-read when it changes, as a sidecar refreshes it), or an
    # OIDC client-credentials token endpoint with a client id and a secret from the environment.
    oauth_token_file: str = ""
    oauth_token_url: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: Secret = field(default_factory=lambda: Secret(""))
    oauth_scope: str = ""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Backpressure: a partition with this many records not yet done is paused.
    max_pending_per_partition: int = 5_000
    # ... and every partition while the records not yet done hold this many bytes (value and
    # request body per record, see forwarder.core.offsets.record_bytes), per process: sized for
    # the 512 MiB pod limit of deploy/kubernetes (README, Performance).
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    commit_interval_ms: int = 1_000
    fetch_max_records: int = 5_000
    # The group coordinator waits this long for a member to rejoin after a rebalance started;
    # the member's drain of its revoked partitions (revoke_drain_ms) and its last commit must
    # fit in it, or it is expelled and that commit fails.
    rebalance_timeout_ms: int = 30_000
    revoke_drain_ms: int = 20_000


@dataclass(frozen=True)
class EndpointConfig:
    profile: Literal["realtime", "ingest"] = "realtime"
    region: str = "us01"
    url: str = ""
    database: str = "clickstream"
    timeout_s: float = 10.0
    # Plain http to a non-loopback host sends the API key in clear: only for a sandbox on a
    # private network (docker-compose), never for the real endpoint.
    allow_plain_http: bool = False
    # A private CA bundle (PEM) to trust instead of the system's, e.g. an egress proxy that
    # re-signs TLS; and an explicit proxy URL (else HTTPS_PROXY / NO_PROXY are honoured).
    ca_file: str = ""
    proxy: str = ""
    api_key: Secret = field(default_factory=lambda: Secret(""))
    wp13n_token: Secret = field(default_factory=lambda: Secret(""))

    @property
    def base_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.region}.{_HOSTS[self.profile]}"


@dataclass(frozen=True)
class BatchConfig:
    max_events: int = MAX_EVENTS_PER_REQUEST
    max_bytes: int = 4_000_000
    linger_ms: int = 200


@dataclass(frozen=True)
class LimitsConfig:
    # A number of concurrent requests, or "adaptive": found by AIMD (forwarder.core.concurrency)
    # between 1 and adaptive_max.
    max_in_flight: int | Literal["adaptive"] = 8
    adaptive_max: int = 64
    requests_per_second: float = 100.0
    burst: int = 200
    # The share of max_in_flight a degraded destination (failing while others work) may hold.
    destination_share: float = 0.5

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
    attempts: int = 3
    backoff_initial_ms: int = 200
    backoff_max_ms: int = 10_000
    # Delay in seconds of each retry tier topic <topic>.retry.<n>; empty: no tiers.
    tiers: tuple[float, ...] = (5.0, 30.0, 300.0)
    # The longest Retry-After honoured: the endpoint's answer holds every request back.
    max_retry_after_s: float = 300.0


@dataclass(frozen=True)
class HealthConfig:
    """When the endpoint counts as down, how it is probed, how the catch-up ramps up."""

    down_after_failures: int = 10
    down_after_s: float = 5.0
    probe_interval_s: float = 1.0
    probe_interval_max_s: float = 3.0
    probe_events: int = 10
    ramp_s: float = 10.0
    # A retry or dead-letter topic failing writes this long turns /readyz not ready.
    publish_unready_after_s: float = 60.0


@dataclass(frozen=True)
class SchemasConfig:
    # Extra schema directory; its event types add to or override the bundled ones.
    dir: str = ""


@dataclass(frozen=True)
class RegistryConfig:
    """A schema registry with the Confluent-compatible REST API, for framed events."""

    # Empty: framed events are unwrapped and validated against the local schemas only.
    url: str = ""
    # Basic auth (Confluent Cloud: the registry's API key and secret); the password only from
    # FORWARDER_REGISTRY__PASSWORD or FORWARDER_REGISTRY__PASSWORD_FILE.
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    # As the endpoint's: a private CA bundle, and a proxy (default: HTTPS_PROXY/NO_PROXY).
    ca_file: str = ""
    proxy: str = ""
    timeout_s: float = 5.0
    # While the registry fails, lookups are retried from 1 s, doubling up to this.
    backoff_max_s: float = 10.0
    # Framed events are validated by their writer schema; true: by the local schema of their
    # event_type too.
    local_schemas: bool = False


@dataclass(frozen=True)
class OpsConfig:
    host: str = "0.0.0.0"
    port: int = 9108
    shutdown_timeout_s: float = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"


PERSONALIZATION_REGIONS = ("us01", "jp01", "eu01")


@dataclass(frozen=True)
class PersonalizationService:
    """One ``[[personalization.services]]`` entry (design.md section 7); see the README table."""

    name: str
    parent_segment_id: str
    topic: str  # resolved: the default is ``<first source topic>.personalization.<name>``
    triggers: tuple[str, ...]
    region: str = "us01"
    url: str = ""
    user_field: str = "user_id"
    # request field -> event field
    context: Mapping[str, str] = field(default_factory=dict)
    cache_ttl_s: float = 60.0
    cache_max_entries: int = 10_000
    requests_per_second: float = 100.0
    burst_per_second: float = 200.0
    burst_seconds: float = 10.0
    max_in_flight: int = 8
    timeout_s: float = 2.0
    max_age_s: float = 30.0
    queue_max_entries: int = 10_000
    fallback_outputs: Mapping[str, Any] = field(default_factory=dict)
    # Default: endpoint.ca_file, and the proxy HTTPS_PROXY/NO_PROXY name for this host.
    ca_file: str = ""
    proxy: str = ""

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
    services: tuple[PersonalizationService, ...] = ()
    # TD_PERSONALIZATION_API_KEY, else the ingest key TD_API_KEY (resolved at load time).
    api_key: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    routes: Mapping[str, str] = field(default_factory=dict)
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    schemas: SchemasConfig = field(default_factory=SchemasConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    # "status" or "status:code" -> action name; see forwarder.core.classify.
    policy: Mapping[str, str] = field(default_factory=dict)
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)

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
