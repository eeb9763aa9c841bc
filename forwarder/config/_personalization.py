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

from forwarder.config._checks import Problems, _is_loopback, _readable, check_proxy
from forwarder.config._model import (
    PERSONALIZATION_REGIONS,
    TOPIC,
    EndpointConfig,
    KafkaConfig,
    PersonalizationConfig,
    PersonalizationService,
    Secret,
)

Coerce = Callable[[str, Any, Any], Any]
MAX_CACHE_TTL_S = 300.0  # the seed's advice: cache for 1 to 5 minutes
_SERVICE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Keys whose value is a table or computed, not coerced from the dataclass type.
_SPECIAL = ("context", "fallback_outputs", "topic")


def merge_personalization_secret(p: Problems, raw: dict[str, Any], value: str | None) -> None:
    table = raw.get("personalization")
    if isinstance(table, dict) and "api_key" in table:
        del table["api_key"]
        p.add(
            "personalization.api_key",
            "secrets are not read from the config file",
            "set TD_PERSONALIZATION_API_KEY or TD_PERSONALIZATION_API_KEY_FILE instead",
        )
    if value:
        raw.setdefault("personalization", {})
        if isinstance(raw["personalization"], dict):
            raw["personalization"]["api_key"] = Secret(value.strip())


def build_personalization(
    p: Problems,
    table: Any,
    kafka: KafkaConfig,
    endpoint: EndpointConfig,
    need_secrets: bool,
    coerce: Coerce,
) -> PersonalizationConfig:
    if not isinstance(table, dict):
        p.add(
            "personalization", "must be a table", "write services as [[personalization.services]]"
        )
        return PersonalizationConfig()
    for key in table:
        if key not in ("services", "api_key"):
            p.add(f"personalization.{key}", "unknown key", "known: services (a list of tables)")
    services_raw = table.get("services", [])
    if not isinstance(services_raw, list):
        p.add("personalization.services", "must be a list", "write [[personalization.services]]")
        services_raw = []
    built = (
        _service(p, f"personalization.services[{i}]", item, kafka, endpoint, coerce)
        for i, item in enumerate(services_raw)
    )
    services = tuple(s for s in built if s is not None)
    names = [s.name for s in services]
    for name in names:
        if names.count(name) > 1:
            p.add("personalization.services", f"service {name!r} is listed twice", "list it once")
    api_key = table.get("api_key")
    key = api_key if isinstance(api_key, Secret) else endpoint.api_key
    if services and need_secrets and not key and "TD_PERSONALIZATION_API_KEY_FILE" not in p:
        p.add(
            "TD_PERSONALIZATION_API_KEY",
            "personalization services need an API key",
            "set TD_API_KEY, or TD_PERSONALIZATION_API_KEY(_FILE) for a key with CDP access",
        )
    return PersonalizationConfig(services=services, api_key=key)


def _service(
    p: Problems,
    where: str,
    item: Any,
    kafka: KafkaConfig,
    endpoint: EndpointConfig,
    coerce: Coerce,
) -> PersonalizationService | None:
    """The service, or None when it cannot be built (its problems are in ``p``)."""
    if not isinstance(item, dict):
        p.add(where, "must be a table", "write it as [[personalization.services]]")
        return None
    fields = {f.name: f for f in dataclasses.fields(PersonalizationService)}
    hints = typing.get_type_hints(PersonalizationService)
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key not in fields:
            p.add(f"{where}.{key}", "unknown key", f"known: {', '.join(sorted(fields))}")
        elif key not in _SPECIAL:
            with p.gather():
                values[key] = coerce(f"{where}.{key}", value, hints[key])
    for key in ("name", "parent_segment_id", "triggers"):
        if not values.get(key):
            p.add(f"{where}.{key}", "is missing", _FIXES[key])
    context = item.get("context", {})
    if not _is_string_table(context):
        p.add(
            f"{where}.context",
            "must map request fields to event fields",
            '{ page_url = "page_url" }',
        )
    fallback = item.get("fallback_outputs", {})
    if not isinstance(fallback, dict):
        p.add(
            f"{where}.fallback_outputs", "must be a table", 'e.g. { recommended_products = ["p1"] }'
        )
    source = kafka.topics[0] if kafka.topics else "clickstream"
    topic = item.get("topic", "") or f"{source}.personalization.{values.get('name', '')}"
    if not isinstance(topic, str) or not TOPIC.match(topic):
        p.add(f"{where}.topic", f"{topic!r} is not a valid topic name", "use a-z 0-9 . _ -")
    if any(key.startswith(f"{where}.") for key in p):
        return None
    service = PersonalizationService(
        **values, context=dict(context), fallback_outputs=fallback, topic=topic
    )
    _check(p, where, service, endpoint)
    return service


_FIXES = {
    "name": "the personalization service's name, as in its API path",
    "parent_segment_id": "the parent segment (audience) id of the service",
    "triggers": 'the event types that trigger a call, e.g. ["product_view"]',
}


def _is_string_table(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    )


def _check(p: Problems, where: str, s: PersonalizationService, endpoint: EndpointConfig) -> None:
    if not set(s.name) <= _SERVICE_NAME_CHARS:
        p.add(f"{where}.name", f"{s.name!r} is not a service name", "a-z, 0-9, _, -")
    if not s.parent_segment_id.isalnum():
        p.add(f"{where}.parent_segment_id", f"{s.parent_segment_id!r} is not an id", "e.g. 394649")
    if s.url:
        parts = urlsplit(s.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            p.add(f"{where}.url", f"{s.url!r} is not an http(s) URL", "use https://")
        elif parts.scheme == "http" and not (
            _is_loopback(parts.hostname) or endpoint.allow_plain_http
        ):
            p.add(
                f"{where}.url",
                "plain http is refused for a non-loopback host (the API key would travel in clear)",
                "use https://; for a sandbox on a private network set endpoint.allow_plain_http",
            )
    elif s.region not in PERSONALIZATION_REGIONS:
        p.add(
            f"{where}.region",
            f"{s.region!r} is not a personalization region",
            f"use one of {', '.join(PERSONALIZATION_REGIONS)}, or set url",
        )
    if s.ca_file:
        _readable(p, f"{where}.ca_file", s.ca_file)
    if s.proxy:
        check_proxy(p, f"{where}.proxy", s.proxy)
    if not s.user_field:
        p.add(f"{where}.user_field", "is empty", "user_id, or td_client_id")
    if not 0 <= s.cache_ttl_s <= MAX_CACHE_TTL_S:
        p.add(f"{where}.cache_ttl_s", f"{s.cache_ttl_s} is out of range", "use 0 (off) to 300")
    for key in ("cache_max_entries", "max_in_flight", "queue_max_entries"):
        if getattr(s, key) < 1:
            p.add(f"{where}.{key}", f"must be 1 or more, got {getattr(s, key)}")
    for key in ("requests_per_second", "timeout_s", "max_age_s", "burst_seconds"):
        if getattr(s, key) <= 0:
            p.add(f"{where}.{key}", f"must be above 0, got {getattr(s, key)}")
    if s.burst_per_second < s.requests_per_second:
        p.add(
            f"{where}.burst_per_second",
            f"{s.burst_per_second} is below requests_per_second {s.requests_per_second}",
            "set it at or above requests_per_second (equal: no burst)",
        )
