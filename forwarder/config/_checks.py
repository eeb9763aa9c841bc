"""Cross-field rules and ranges of the configuration that the types alone cannot say.

Each rule adds what it finds to a ``Problems`` and goes on, so that one start-up names them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from forwarder.config._model import (
    DEFAULT_MAX_PENDING_BYTES,
    MAX_BYTES_PER_EVENT,
    MAX_BYTES_PER_REQUEST,
    MAX_EVENTS_PER_REQUEST,
    NAME,
    REGIONS,
    REVOKE_COMMIT_MS,
    SESSION_TIMEOUT_MS,
    TOPIC,
    Config,
    KafkaConfig,
    RegistryConfig,
)
from forwarder.errors import ConfigError, ConfigProblem

MAX_RETRY_AFTER_S = 3600
MAX_ADAPTIVE_IN_FLIGHT = 1024


class Problems:
    """Every problem of a configuration, found in one pass, raised together by ``raise_any``.

    One problem per key, the first found: a later rule about a key whose value was refused
    would be judging the default that stood in for it.
    """

    def __init__(self) -> None:
        self._found: dict[str, ConfigProblem] = {}

    def add(self, key: str, problem: str, fix: str = "") -> None:
        self._found.setdefault(key, ConfigProblem(key, problem, fix))

    def __contains__(self, key: object) -> bool:
        return key in self._found

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    @contextmanager
    def gather(self) -> Iterator[None]:
        """Record a ``ConfigError`` raised inside (a value that does not convert) and go on."""
        try:
            yield
        except ConfigError as exc:
            for problem in exc.problems:
                self.add(problem.key, problem.problem, problem.fix)

    def raise_any(self) -> None:
        if self._found:
            raise ConfigError.of(list(self._found.values()))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(p: Problems, key: str, value: float, fix: str = "use a number above 0") -> None:
    if value <= 0:
        p.add(key, f"must be above 0, got {value}", fix)


def _readable(p: Problems, key: str, path: str) -> None:
    if path and not Path(path).is_file():
        p.add(key, f"file {path!r} not found", "point it at a readable PEM file")


def _check_kafka_security(p: Problems, k: KafkaConfig) -> None:
    tls = k.security_protocol in ("SSL", "SASL_SSL")
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(k, key)
        if path and not tls:
            p.add(
                f"kafka.{key}",
                f"is set but security_protocol {k.security_protocol} does not use TLS",
                "use security_protocol SSL or SASL_SSL, or remove the key",
            )
        _readable(p, f"kafka.{key}", path)
    if k.ssl_keyfile and not k.ssl_certfile:
        p.add("kafka.ssl_certfile", "ssl_keyfile is set without a certificate", "set ssl_certfile")
    if not k.security_protocol.startswith("SASL"):
        return
    if k.sasl_mechanism == "OAUTHBEARER":
        _check_oauth(p, k)
    elif not (k.sasl_mechanism and k.sasl_username and k.sasl_password):
        p.add(
            "kafka.sasl_mechanism",
            f"security_protocol {k.security_protocol} needs SASL credentials",
            "set sasl_mechanism, sasl_username and FORWARDER_KAFKA__SASL_PASSWORD",
        )


def _check_oauth(p: Problems, k: KafkaConfig) -> None:
    if bool(k.oauth_token_file) == bool(k.oauth_token_url):
        p.add(
            "kafka.oauth_token_file",
            "OAUTHBEARER needs exactly one token source",
            "set oauth_token_file, or oauth_token_url with oauth_client_id",
        )
    _readable(p, "kafka.oauth_token_file", k.oauth_token_file)
    if not k.oauth_token_url:
        return
    _check_url(
        p,
        "kafka.oauth_token_url",
        k.oauth_token_url,
        "https://idp/token",
        clear="the client secret",
    )
    if not (k.oauth_client_id and k.oauth_client_secret):
        p.add(
            "kafka.oauth_client_id",
            "oauth_token_url needs a client id and secret",
            "set oauth_client_id and FORWARDER_KAFKA__OAUTH_CLIENT_SECRET",
        )


def _check_kafka_budgets(p: Problems, k: KafkaConfig) -> None:
    """Memory in bytes, and the revoke drain against the rebalance timeout that bounds it."""
    if k.max_pending_bytes < MAX_BYTES_PER_EVENT * 4:
        p.add(
            "kafka.max_pending_bytes",
            f"{k.max_pending_bytes} is below 4 MB: one large event would pause every partition",
            f"use 4000000 or more (the default {DEFAULT_MAX_PENDING_BYTES} fits a 512 MiB pod)",
        )
    if k.rebalance_timeout_ms < SESSION_TIMEOUT_MS:
        p.add(
            "kafka.rebalance_timeout_ms",
            f"{k.rebalance_timeout_ms} is below the session timeout ({SESSION_TIMEOUT_MS} ms)",
            f"use {SESSION_TIMEOUT_MS} or more",
        )
    _positive(p, "kafka.revoke_drain_ms", k.revoke_drain_ms)
    room = k.rebalance_timeout_ms - REVOKE_COMMIT_MS
    if k.revoke_drain_ms > room:
        p.add(
            "kafka.revoke_drain_ms",
            f"{k.revoke_drain_ms} ms does not fit in kafka.rebalance_timeout_ms "
            f"({k.rebalance_timeout_ms} ms) with {REVOKE_COMMIT_MS} ms left for the commit: "
            "the coordinator would expel this member mid-drain and its commit would fail",
            f"lower revoke_drain_ms to {max(room, 0)} or less, or raise rebalance_timeout_ms to "
            f"{k.revoke_drain_ms + REVOKE_COMMIT_MS} or more",
        )


def _check_registry(p: Problems, r: RegistryConfig) -> None:
    for key in ("username", "ca_file", "proxy"):
        if getattr(r, key) and not r.url:
            p.add(f"registry.{key}", "is set without registry.url", "set registry.url")
    if r.username and not r.password:
        p.add(
            "registry.username",
            "is set without a password",
            "set FORWARDER_REGISTRY__PASSWORD or FORWARDER_REGISTRY__PASSWORD_FILE",
        )
    if r.password and not r.username:
        p.add("registry.username", "a registry password is set without a user name", "set it")
    _positive(p, "registry.timeout_s", r.timeout_s)
    _positive(p, "registry.backoff_max_s", r.backoff_max_s)
    _readable(p, "registry.ca_file", r.ca_file)
    if r.proxy:
        check_proxy(p, "registry.proxy", r.proxy)
    if r.url:
        example = "https://psrc-xxxxx.eu-west-1.aws.confluent.cloud"
        _check_url(p, "registry.url", r.url, example, clear="the password" if r.password else "")


def _check_url(p: Problems, key: str, url: str, example: str, *, clear: str = "") -> None:
    """An http(s) URL with a host; when ``clear`` names a secret it would carry, plain http
    only to a loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        p.add(key, f"{url!r} is not an http(s) URL", f"e.g. {example}")
    elif clear and parts.scheme == "http" and not _is_loopback(parts.hostname):
        p.add(
            key,
            f"plain http is refused for a non-loopback host ({clear} would travel in clear)",
            "use https://",
        )


def check_proxy(p: Problems, key: str, url: str) -> None:
    proxy = urlsplit(url)
    if proxy.scheme not in ("http", "https") or not proxy.hostname:
        p.add(key, f"{url!r} is not an http(s) URL", "e.g. http://proxy:3128")


def check(p: Problems, config: Config, need_secrets: bool = True) -> None:
    """Cross-field rules and ranges that the types alone cannot say."""
    k, e, b, lim, r = config.kafka, config.endpoint, config.batch, config.limits, config.retry
    if not k.bootstrap_servers.strip():
        p.add("kafka.bootstrap_servers", "is empty", "set host:port[,host:port]")
    if not k.topics:
        p.add("kafka.topics", "is empty", 'name at least one topic, e.g. ["clickstream"]')
    for topic in k.topics:
        if not TOPIC.match(topic):
            p.add(
                "kafka.topics", f"{topic!r} is not a valid topic name", "use letters, digits, . _ -"
            )
    if not k.group_id:
        p.add("kafka.group_id", "is empty", "name the consumer group")
    _check_kafka_security(p, config.kafka)
    _positive(p, "kafka.max_pending_per_partition", k.max_pending_per_partition)
    _positive(p, "kafka.commit_interval_ms", k.commit_interval_ms)
    _positive(p, "kafka.fetch_max_records", k.fetch_max_records)
    _check_kafka_budgets(p, k)
    if e.url:
        parts = urlsplit(e.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            p.add(
                "endpoint.url",
                f"{e.url!r} is not an http(s) URL",
                "e.g. https://proxy.example:8443",
            )
        elif parts.scheme == "http" and not (_is_loopback(parts.hostname) or e.allow_plain_http):
            p.add(
                "endpoint.url",
                "plain http is refused for a non-loopback host (the API key would travel in clear)",
                "use https://; for a sandbox on a private network set endpoint.allow_plain_http",
            )
    elif e.region not in REGIONS[e.profile]:
        p.add(
            "endpoint.region",
            f"{e.region!r} is not a region of the {e.profile} profile",
            f"use one of {', '.join(REGIONS[e.profile])}, or set endpoint.url",
        )
    if not NAME.match(e.database):
        p.add(
            "endpoint.database",
            f"{e.database!r} is not a valid name",
            "3-255 characters of a-z, 0-9, _",
        )
    _positive(p, "endpoint.timeout_s", e.timeout_s)
    _readable(p, "endpoint.ca_file", e.ca_file)
    if e.proxy:
        check_proxy(p, "endpoint.proxy", e.proxy)
    if need_secrets and not e.api_key and "TD_API_KEY_FILE" not in p:
        p.add("TD_API_KEY", "the API key is missing", "set TD_API_KEY or TD_API_KEY_FILE")
    if (
        need_secrets
        and e.profile == "realtime"
        and not e.wp13n_token
        and "TD_WP13N_TOKEN_FILE" not in p
    ):
        p.add(
            "TD_WP13N_TOKEN",
            "the realtime profile needs a WP13n token",
            "set TD_WP13N_TOKEN or TD_WP13N_TOKEN_FILE (account/instance/token), or use profile 'ingest'",
        )
    if not 1 <= b.max_events <= MAX_EVENTS_PER_REQUEST:
        p.add("batch.max_events", f"{b.max_events} is out of range", "the endpoint takes 1 to 500")
    if not MAX_BYTES_PER_EVENT <= b.max_bytes <= MAX_BYTES_PER_REQUEST:
        p.add("batch.max_bytes", f"{b.max_bytes} is out of range", "use 1000000 to 5000000")
    if b.linger_ms < 0:
        p.add("batch.linger_ms", "must not be negative", "use 0 or more")
    if isinstance(lim.max_in_flight, int):
        _positive(p, "limits.max_in_flight", lim.max_in_flight, 'use 1 or more, or "adaptive"')
    if not 1 <= lim.adaptive_max <= MAX_ADAPTIVE_IN_FLIGHT:
        p.add(
            "limits.adaptive_max",
            f"{lim.adaptive_max} is out of range",
            f"use 1 to {MAX_ADAPTIVE_IN_FLIGHT} (the most requests in flight when adaptive)",
        )
    if lim.requests_per_second < 0:
        p.add("limits.requests_per_second", "must not be negative", "use 0 for no limit")
    _positive(p, "limits.burst", lim.burst, "use 1 or more")
    if not 0 < lim.destination_share <= 1:
        p.add(
            "limits.destination_share",
            f"{lim.destination_share:g} is out of range",
            "use a share above 0 and at most 1 (0.5: half of max_in_flight)",
        )
    _positive(p, "retry.attempts", r.attempts, "use 1 or more (1 means no in-process retry)")
    _positive(p, "retry.backoff_initial_ms", r.backoff_initial_ms)
    if r.backoff_max_ms < r.backoff_initial_ms:
        p.add("retry.backoff_max_ms", "is below backoff_initial_ms", "raise it")
    for delay in r.tiers:
        _positive(p, "retry.tiers", delay, "each tier delay is a number of seconds above 0")
    if not 1 <= r.max_retry_after_s <= MAX_RETRY_AFTER_S:
        p.add(
            "retry.max_retry_after_s",
            f"{r.max_retry_after_s:g} is out of range",
            f"use 1 to {MAX_RETRY_AFTER_S} seconds (a Retry-After holds back every request)",
        )
    _positive(p, "ops.shutdown_timeout_s", config.ops.shutdown_timeout_s)
    h = config.health
    _positive(p, "health.down_after_failures", h.down_after_failures, "use 1 or more")
    if h.down_after_s < 0:
        p.add("health.down_after_s", "must not be negative", "use 0 or more seconds")
    _positive(p, "health.probe_interval_s", h.probe_interval_s)
    if h.probe_interval_max_s < h.probe_interval_s:
        p.add("health.probe_interval_max_s", "is below probe_interval_s", "raise it")
    if not 1 <= h.probe_events <= b.max_events:
        p.add(
            "health.probe_events",
            f"{h.probe_events} is out of range",
            f"use 1 to batch.max_events ({b.max_events})",
        )
    if h.ramp_s < 0:
        p.add("health.ramp_s", "must not be negative", "use 0 for no ramp")
    _positive(p, "health.publish_unready_after_s", h.publish_unready_after_s)
    _check_registry(p, config.registry)
