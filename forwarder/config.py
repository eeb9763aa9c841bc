"""Configuration: parsed and validated once at start-up into frozen dataclasses.

Sources, later ones winning: the built-in defaults, the TOML file, environment variables
``FORWARDER_<SECTION>__<KEY>`` (e.g. ``FORWARDER_KAFKA__BOOTSTRAP_SERVERS``), and the secrets
``TD_API_KEY`` / ``TD_WP13N_TOKEN`` (or files named by ``TD_API_KEY_FILE`` /
``TD_WP13N_TOKEN_FILE``, as Kubernetes mounts secrets). Any problem raises ``ConfigError``
naming the key and the fix; nothing downstream ever reads the environment.

Secrets are held in ``Secret``, whose ``str``/``repr`` never show the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from forwarder.errors import ConfigError

ENV_PREFIX = "FORWARDER_"
MAX_EVENTS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5_000_000
MAX_BYTES_PER_EVENT = 1_000_000

REGIONS = {
    "realtime": ("us01", "eu01", "ap01"),
    "ingest": ("us01", "eu01", "ap01", "ap02", "ap03"),
}
_HOSTS = {"realtime": "p13n.in.treasuredata.com", "ingest": "records.in.treasuredata.com"}
_NAME = re.compile(r"^[a-z0-9_]{3,255}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = ""
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Backpressure: a partition with this many records not yet done is paused.
    max_pending_per_partition: int = 5_000
    commit_interval_ms: int = 1_000
    fetch_max_records: int = 5_000


@dataclass(frozen=True)
class EndpointConfig:
    profile: Literal["realtime", "ingest"] = "realtime"
    region: str = "us01"
    url: str = ""
    database: str = "clickstream"
    timeout_s: float = 10.0
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
    max_in_flight: int = 8
    requests_per_second: float = 100.0
    burst: int = 200


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = 3
    backoff_initial_ms: int = 200
    backoff_max_ms: int = 10_000
    # Delay in seconds of each retry tier topic <topic>.retry.<n>; empty: no tiers.
    tiers: tuple[float, ...] = (5.0, 30.0, 300.0)


@dataclass(frozen=True)
class SchemasConfig:
    # Extra schema directory; its event types add to or override the bundled ones.
    dir: str = ""


@dataclass(frozen=True)
class OpsConfig:
    host: str = "0.0.0.0"
    port: int = 9108
    shutdown_timeout_s: float = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    routes: Mapping[str, str] = field(default_factory=dict)
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    schemas: SchemasConfig = field(default_factory=SchemasConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    # "status" or "status:code" -> action name; see forwarder.core.classify.
    policy: Mapping[str, str] = field(default_factory=dict)

    def destination_for(self, event_type: str) -> str:
        """``database.table`` for an event type: its route, else the default database."""
        route = self.routes.get(event_type)
        return route if route else f"{self.endpoint.database}.{event_type}"


_SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaConfig,
    "endpoint": EndpointConfig,
    "batch": BatchConfig,
    "limits": LimitsConfig,
    "retry": RetryConfig,
    "schemas": SchemasConfig,
    "ops": OpsConfig,
}
_FREE_SECTIONS = ("routes", "policy")
POLICY_ACTIONS = ("retry", "isolate", "split", "dead-letter", "pause")
_POLICY_KEY = re.compile(r"^(transport|[1-5][0-9]{2}(:[0-9]{1,6})?)$")
# Secrets come from their own variables, never from the TOML file.
_SECRET_KEYS = {("endpoint", "api_key"), ("endpoint", "wp13n_token")}


def load_config(
    path: str | Path | None, env: Mapping[str, str] | None = None, *, need_secrets: bool = True
) -> Config:
    """Read, merge and validate the configuration; raise ``ConfigError`` on any problem.

    ``need_secrets=False`` is for commands that never call the endpoint (``forwarder dlq``).
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                "--config", f"file {str(path)!r} not found", "pass an existing TOML file"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                "--config", f"{path} is not valid TOML: {exc}", "fix the syntax"
            ) from None
    _merge_env(raw, env)
    _merge_secrets(raw, env)
    return _build(raw, need_secrets)


def _merge_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(section, "must be a table", f"check {name}")
        target[key] = _EnvValue(value, name)


@dataclass(frozen=True)
class _EnvValue:
    """A string from the environment, converted to the key's type when the key is known."""

    text: str
    variable: str


def _merge_secrets(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    endpoint = raw.setdefault("endpoint", {})
    for key, variable in (("api_key", "TD_API_KEY"), ("wp13n_token", "TD_WP13N_TOKEN")):
        if key in endpoint and not isinstance(endpoint[key], _EnvValue):
            raise ConfigError(
                f"endpoint.{key}",
                "secrets are not read from the config file",
                f"set {variable} or {variable}_FILE instead",
            )
        value = env.get(variable)
        file_name = env.get(f"{variable}_FILE")
        if file_name:
            try:
                value = Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{variable}_FILE",
                    f"cannot read {file_name!r}: {exc.strerror}",
                    "point it at a readable file holding the secret",
                ) from None
        if value:
            endpoint[key] = Secret(value.strip())
        elif isinstance(endpoint.get(key), _EnvValue):
            endpoint[key] = Secret(endpoint[key].text)


def _build(raw: dict[str, Any], need_secrets: bool = True) -> Config:
    unknown = set(raw) - set(_SECTIONS) - set(_FREE_SECTIONS)
    for section in sorted(unknown):
        raise ConfigError(
            section, "unknown section", _suggest(section, [*_SECTIONS, *_FREE_SECTIONS])
        )
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table", f"write it as [{section}]")
        built[section] = _build_section(section, cls, table)
    built["routes"] = _build_routes(raw.get("routes", {}))
    built["policy"] = _build_policy(raw.get("policy", {}))
    config = Config(**built)
    _check(config, need_secrets)
    return config


def _build_section(section: str, cls: type[Any], table: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{section}.{key}", "unknown key", _suggest(key, list(fields)))
        if (section, key) in _SECRET_KEYS:
            values[key] = value
            continue
        values[key] = _coerce(f"{section}.{key}", value, hints[key])
    return cls(**values)


def _build_routes(table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(
            "routes", "must be a table", 'write it as [routes] page_view = "db.table"'
        )
    routes: dict[str, str] = {}
    for event_type, value in table.items():
        text = value.text if isinstance(value, _EnvValue) else value
        if not isinstance(text, str) or not _is_destination(text):
            raise ConfigError(
                f"routes.{event_type}",
                f"{text!r} is not a database.table",
                "names are 3-255 characters of a-z, 0-9 and _",
            )
        routes[event_type] = text
    return routes


def _build_policy(table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(
            "policy", "must be a table", 'write it as [policy] "400:3004" = "isolate"'
        )
    policy: dict[str, str] = {}
    for key, value in table.items():
        text = value.text if isinstance(value, _EnvValue) else value
        if not _POLICY_KEY.match(str(key)):
            raise ConfigError(
                f"policy.{key}",
                "is not a status or status:code",
                'e.g. "500", "400:3004" or "transport"',
            )
        if text not in POLICY_ACTIONS:
            raise ConfigError(
                f"policy.{key}",
                f"{text!r} is not an action",
                f"use one of {', '.join(POLICY_ACTIONS)}",
            )
        policy[str(key)] = text
    return policy


def _is_destination(text: str) -> bool:
    database, dot, table = text.partition(".")
    return bool(dot) and bool(_NAME.match(database)) and bool(_NAME.match(table))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    env_name = value.variable if isinstance(value, _EnvValue) else None
    where = f" (from {env_name})" if env_name else ""
    if isinstance(value, _EnvValue):
        value = _parse_env_text(value.text, hint)
    if hint is Secret:
        return Secret(str(value))
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(
                key,
                f"{value!r} is not allowed{where}",
                f"use one of {', '.join(map(repr, choices))}",
            )
        return value
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {value!r}{where}", "write it as [..]")
        return tuple(_coerce(key, item, item_type) for item in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}{where}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {value!r}{where}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(key, f"expected a number, got {value!r}{where}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}{where}")
    if isinstance(hint, types.UnionType):  # pragma: no cover - no such keys yet
        return value
    raise AssertionError(f"unsupported config type {hint!r} for {key}")


def _parse_env_text(text: str, hint: Any) -> Any:
    """Turn an environment string into the key's type; leave it a string when it won't parse."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return [
            _parse_env_text(part.strip(), typing.get_args(hint)[0])
            for part in text.split(",")
            if part.strip()
        ]
    try:
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError:
        return text
    if hint is bool and text.lower() in ("true", "false", "1", "0"):
        return text.lower() in ("true", "1")
    return text


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known: {', '.join(sorted(known))}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(key: str, value: float, fix: str = "use a number above 0") -> None:
    if value <= 0:
        raise ConfigError(key, f"must be above 0, got {value}", fix)


def _check(config: Config, need_secrets: bool = True) -> None:
    """Cross-field rules and ranges that the types alone cannot say."""
    k, e, b, lim, r = config.kafka, config.endpoint, config.batch, config.limits, config.retry
    if not k.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers", "is empty", "set host:port[,host:port]")
    if not k.topics:
        raise ConfigError(
            "kafka.topics", "is empty", 'name at least one topic, e.g. ["clickstream"]'
        )
    for topic in k.topics:
        if not _TOPIC.match(topic):
            raise ConfigError(
                "kafka.topics", f"{topic!r} is not a valid topic name", "use letters, digits, . _ -"
            )
    if not k.group_id:
        raise ConfigError("kafka.group_id", "is empty", "name the consumer group")
    if k.security_protocol.startswith("SASL") and not (
        k.sasl_mechanism and k.sasl_username and k.sasl_password
    ):
        raise ConfigError(
            "kafka.sasl_mechanism",
            f"security_protocol {k.security_protocol} needs SASL credentials",
            "set sasl_mechanism, sasl_username and FORWARDER_KAFKA__SASL_PASSWORD",
        )
    _positive("kafka.max_pending_per_partition", k.max_pending_per_partition)
    _positive("kafka.commit_interval_ms", k.commit_interval_ms)
    _positive("kafka.fetch_max_records", k.fetch_max_records)
    if e.url:
        parts = urlsplit(e.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "endpoint.url",
                f"{e.url!r} is not an http(s) URL",
                "e.g. https://proxy.example:8443",
            )
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigError(
                "endpoint.url",
                "plain http is refused for a non-loopback host (the API key would travel in clear)",
                "use https://, or a loopback host for a local sandbox",
            )
    elif e.region not in REGIONS[e.profile]:
        raise ConfigError(
            "endpoint.region",
            f"{e.region!r} is not a region of the {e.profile} profile",
            f"use one of {', '.join(REGIONS[e.profile])}, or set endpoint.url",
        )
    if not _NAME.match(e.database):
        raise ConfigError(
            "endpoint.database",
            f"{e.database!r} is not a valid name",
            "3-255 characters of a-z, 0-9, _",
        )
    _positive("endpoint.timeout_s", e.timeout_s)
    if need_secrets and not e.api_key:
        raise ConfigError(
            "TD_API_KEY", "the API key is missing", "set TD_API_KEY or TD_API_KEY_FILE"
        )
    if need_secrets and e.profile == "realtime" and not e.wp13n_token:
        raise ConfigError(
            "TD_WP13N_TOKEN",
            "the realtime profile needs a WP13n token",
            "set TD_WP13N_TOKEN or TD_WP13N_TOKEN_FILE (account/instance/token), or use profile 'ingest'",
        )
    if not 1 <= b.max_events <= MAX_EVENTS_PER_REQUEST:
        raise ConfigError(
            "batch.max_events", f"{b.max_events} is out of range", "the endpoint takes 1 to 500"
        )
    if not MAX_BYTES_PER_EVENT <= b.max_bytes <= MAX_BYTES_PER_REQUEST:
        raise ConfigError(
            "batch.max_bytes", f"{b.max_bytes} is out of range", "use 1000000 to 5000000"
        )
    if b.linger_ms < 0:
        raise ConfigError("batch.linger_ms", "must not be negative", "use 0 or more")
    _positive("limits.max_in_flight", lim.max_in_flight, "use 1 or more")
    if lim.requests_per_second < 0:
        raise ConfigError(
            "limits.requests_per_second", "must not be negative", "use 0 for no limit"
        )
    _positive("limits.burst", lim.burst, "use 1 or more")
    _positive("retry.attempts", r.attempts, "use 1 or more (1 means no in-process retry)")
    _positive("retry.backoff_initial_ms", r.backoff_initial_ms)
    if r.backoff_max_ms < r.backoff_initial_ms:
        raise ConfigError("retry.backoff_max_ms", "is below backoff_initial_ms", "raise it")
    for delay in r.tiers:
        _positive("retry.tiers", delay, "each tier delay is a number of seconds above 0")
    _positive("ops.shutdown_timeout_s", config.ops.shutdown_timeout_s)


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
