"""The ``[[personalization.services]]`` section (design.md section 7): parsed and checked once.

None by default, so existing configurations are unchanged. The key is ``TD_API_KEY`` unless
``TD_PERSONALIZATION_API_KEY`` (or ``_FILE``) names one with CDP access; it is never read from
the file.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from forwarder.config._checks import _is_loopback, _readable, check_proxy
from forwarder.config._model import (
    PERSONALIZATION_REGIONS,
    TOPIC,
    EndpointConfig,
    KafkaConfig,
    PersonalizationConfig,
    PersonalizationService,
    Secret,
)
from forwarder.errors import ConfigError

Coerce = Callable[[str, Any, Any], Any]
MAX_CACHE_TTL_S = 300.0  # the seed's advice: cache for 1 to 5 minutes
_SERVICE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Keys whose value is a table or computed, not coerced from the dataclass type.
_SPECIAL = ("context", "fallback_outputs", "topic")


def merge_personalization_secret(raw: dict[str, Any], value: str | None) -> None:
    table = raw.get("personalization")
    if isinstance(table, dict) and "api_key" in table:
        raise ConfigError(
            "personalization.api_key",
            "secrets are not read from the config file",
            "set TD_PERSONALIZATION_API_KEY or TD_PERSONALIZATION_API_KEY_FILE instead",
        )
    if value:
        raw.setdefault("personalization", {})
        if isinstance(raw["personalization"], dict):
            raw["personalization"]["api_key"] = Secret(value.strip())


def build_personalization(
    table: Any, kafka: KafkaConfig, endpoint: EndpointConfig, need_secrets: bool, coerce: Coerce
) -> PersonalizationConfig:
    if not isinstance(table, dict):
        raise ConfigError(
            "personalization", "must be a table", "write services as [[personalization.services]]"
        )
    for key in table:
        if key not in ("services", "api_key"):
            raise ConfigError(
                f"personalization.{key}", "unknown key", "known: services (a list of tables)"
            )
    services_raw = table.get("services", [])
    if not isinstance(services_raw, list):
        raise ConfigError(
            "personalization.services", "must be a list", "write [[personalization.services]]"
        )
    services = tuple(
        _service(f"personalization.services[{i}]", item, kafka, endpoint, coerce)
        for i, item in enumerate(services_raw)
    )
    names = [s.name for s in services]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                "personalization.services", f"service {name!r} is listed twice", "list it once"
            )
    api_key = table.get("api_key")
    key = api_key if isinstance(api_key, Secret) else endpoint.api_key
    if services and need_secrets and not key:
        raise ConfigError(
            "TD_PERSONALIZATION_API_KEY",
            "personalization services need an API key",
            "set TD_API_KEY, or TD_PERSONALIZATION_API_KEY(_FILE) for a key with CDP access",
        )
    return PersonalizationConfig(services=services, api_key=key)


def _service(
    where: str, item: Any, kafka: KafkaConfig, endpoint: EndpointConfig, coerce: Coerce
) -> PersonalizationService:
    if not isinstance(item, dict):
        raise ConfigError(where, "must be a table", "write it as [[personalization.services]]")
    fields = {f.name: f for f in dataclasses.fields(PersonalizationService)}
    hints = typing.get_type_hints(PersonalizationService)
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key not in fields:
            raise ConfigError(
                f"{where}.{key}", "unknown key", f"known: {', '.join(sorted(fields))}"
            )
        if key in _SPECIAL:
            continue
        values[key] = coerce(f"{where}.{key}", value, hints[key])
    for key in ("name", "parent_segment_id", "triggers"):
        if not values.get(key):
            raise ConfigError(f"{where}.{key}", "is missing", _FIXES[key])
    values["context"] = _string_table(f"{where}.context", item.get("context", {}))
    fallback = item.get("fallback_outputs", {})
    if not isinstance(fallback, dict):
        raise ConfigError(
            f"{where}.fallback_outputs", "must be a table", 'e.g. { recommended_products = ["p1"] }'
        )
    values["fallback_outputs"] = fallback
    topic = item.get("topic", "") or f"{kafka.topics[0]}.personalization.{values['name']}"
    if not isinstance(topic, str) or not TOPIC.match(topic):
        raise ConfigError(
            f"{where}.topic", f"{topic!r} is not a valid topic name", "use a-z 0-9 . _ -"
        )
    values["topic"] = topic
    service = PersonalizationService(**values)
    _check(where, service, endpoint)
    return service


_FIXES = {
    "name": "the personalization service's name, as in its API path",
    "parent_segment_id": "the parent segment (audience) id of the service",
    "triggers": 'the event types that trigger a call, e.g. ["product_view"]',
}


def _string_table(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(
            key, "must map request fields to event fields", '{ page_url = "page_url" }'
        )
    return dict(value)


def _check(where: str, s: PersonalizationService, endpoint: EndpointConfig) -> None:
    if not set(s.name) <= _SERVICE_NAME_CHARS:
        raise ConfigError(f"{where}.name", f"{s.name!r} is not a service name", "a-z, 0-9, _, -")
    if not s.parent_segment_id.isalnum():
        raise ConfigError(
            f"{where}.parent_segment_id", f"{s.parent_segment_id!r} is not an id", "e.g. 394649"
        )
    if s.url:
        parts = urlsplit(s.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.url", f"{s.url!r} is not an http(s) URL", "use https://")
        if parts.scheme == "http" and not (
            _is_loopback(parts.hostname) or endpoint.allow_plain_http
        ):
            raise ConfigError(
                f"{where}.url",
                "plain http is refused for a non-loopback host (the API key would travel in clear)",
                "use https://; for a sandbox on a private network set endpoint.allow_plain_http",
            )
    elif s.region not in PERSONALIZATION_REGIONS:
        raise ConfigError(
            f"{where}.region",
            f"{s.region!r} is not a personalization region",
            f"use one of {', '.join(PERSONALIZATION_REGIONS)}, or set url",
        )
    if s.ca_file:
        _readable(f"{where}.ca_file", s.ca_file)
    if s.proxy:
        check_proxy(f"{where}.proxy", s.proxy)
    if not s.user_field:
        raise ConfigError(f"{where}.user_field", "is empty", "user_id, or td_client_id")
    if not 0 <= s.cache_ttl_s <= MAX_CACHE_TTL_S:
        raise ConfigError(
            f"{where}.cache_ttl_s", f"{s.cache_ttl_s} is out of range", "use 0 (off) to 300"
        )
    for key in ("cache_max_entries", "max_in_flight", "queue_max_entries"):
        if getattr(s, key) < 1:
            raise ConfigError(f"{where}.{key}", f"must be 1 or more, got {getattr(s, key)}")
    for key in ("requests_per_second", "timeout_s", "max_age_s", "burst_seconds"):
        if getattr(s, key) <= 0:
            raise ConfigError(f"{where}.{key}", f"must be above 0, got {getattr(s, key)}")
    if s.burst_per_second < s.requests_per_second:
        raise ConfigError(
            f"{where}.burst_per_second",
            f"{s.burst_per_second} is below requests_per_second {s.requests_per_second}",
            "set it at or above requests_per_second (equal: no burst)",
        )
