"""Configuration: parsed and validated once at start-up into frozen dataclasses.

Sources, later ones winning: the built-in defaults, the TOML file, environment variables
``FORWARDER_<SECTION>__<KEY>`` (e.g. ``FORWARDER_KAFKA__BOOTSTRAP_SERVERS``), and the secrets
``TD_API_KEY`` / ``TD_WP13N_TOKEN`` (or files named by ``TD_API_KEY_FILE`` /
``TD_WP13N_TOKEN_FILE``, as Kubernetes mounts secrets). Any problem raises ``ConfigError``
naming the key and the fix; every problem of the file and the environment is found in one
pass and reported together (``Problems``). Nothing downstream ever reads the environment.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from forwarder.config._checks import Problems, check, check_proxy
from forwarder.config._model import (
    POLICY_ACTIONS,
    POLICY_KEY,
    BatchConfig,
    Config,
    EndpointConfig,
    HealthConfig,
    KafkaConfig,
    LimitsConfig,
    OpsConfig,
    RegistryConfig,
    RetryConfig,
    SchemasConfig,
    Secret,
    is_destination,
)
from forwarder.config._personalization import (
    build_personalization,
    merge_personalization_secret,
)
from forwarder.errors import ConfigError

ENV_PREFIX = "FORWARDER_"

_SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaConfig,
    "endpoint": EndpointConfig,
    "batch": BatchConfig,
    "limits": LimitsConfig,
    "retry": RetryConfig,
    "health": HealthConfig,
    "schemas": SchemasConfig,
    "ops": OpsConfig,
    "registry": RegistryConfig,
}
_FREE_SECTIONS = ("routes", "policy", "personalization")
# Secrets come from their own variables, never from the TOML file: the endpoint's from
# TD_API_KEY / TD_WP13N_TOKEN, Kafka's and the registry's from FORWARDER_<SECTION>__<KEY> or
# FORWARDER_<SECTION>__<KEY>_FILE.
_SECRET_KEYS = {("endpoint", "api_key"), ("endpoint", "wp13n_token")}
_ENV_SECRETS = {
    "kafka": ("sasl_password", "ssl_key_password", "oauth_client_secret"),
    "registry": ("password",),
}


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
    return load_raw(raw, env, need_secrets)


def load_raw(raw: dict[str, Any], env: Mapping[str, str], need_secrets: bool = True) -> Config:
    """``load_config`` of a file already parsed (``raw`` is changed)."""
    p = Problems()
    _refuse_file_secrets(p, raw)
    _merge_env(p, raw, env)
    _merge_secrets(p, raw, env)
    _merge_secret_files(p, raw)
    personalization_key = None
    with p.gather():
        personalization_key = read_secret(env, "TD_PERSONALIZATION_API_KEY")
    merge_personalization_secret(p, raw, personalization_key)
    config = _with_env_proxy(p, _build(p, raw, need_secrets), env)
    p.raise_any()
    return config


def _bypassed(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` as curl reads it: ``*``, or names matching the host or a parent domain."""
    for entry in no_proxy.split(","):
        name = entry.strip().lower()
        if name.startswith("["):  # [::1]:8080
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:  # host:port
            name = name.partition(":")[0]
        name = name.lstrip(".")
        if name == "*" or (name and (host == name or host.endswith(f".{name}"))):
            return True
    return False


def _env_proxy(p: Problems, url: str, env: Mapping[str, str]) -> str:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` matches."""
    scheme = urlsplit(url).scheme
    variable = next((v for v in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY") if env.get(v)), None)
    if variable is None:
        return ""
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if _bypassed(urlsplit(url).hostname or "", no_proxy):
        return ""
    proxy = env[variable]
    if "://" not in proxy:
        proxy = f"http://{proxy}"  # curl and httpx accept host:port alone
    check_proxy(p, variable, proxy)
    return proxy


def _with_env_proxy(p: Problems, config: Config, env: Mapping[str, str]) -> Config:
    """``endpoint.proxy`` from ``HTTPS_PROXY``/``HTTP_PROXY`` unless set or ``NO_PROXY`` says so.

    Resolved here, once, because the sink passes its own transport to httpx, and httpx reads
    the proxy variables only for its default transport; ``config show`` then shows the proxy.
    The schema registry's proxy is resolved the same way for its own URL.
    The personalization services go through the same egress: each gets the proxy the
    environment names for its own host (unless it sets ``proxy``) and, unless it sets
    ``ca_file``, the endpoint's ``ca_file``.
    """
    endpoint = config.endpoint
    if not endpoint.proxy:
        endpoint = dataclasses.replace(endpoint, proxy=_env_proxy(p, endpoint.base_url, env))
    registry = config.registry
    if registry.url and not registry.proxy:
        registry = dataclasses.replace(registry, proxy=_env_proxy(p, registry.url, env))
    services = tuple(
        dataclasses.replace(
            s,
            proxy=s.proxy or _env_proxy(p, s.base_url, env),
            ca_file=s.ca_file or endpoint.ca_file,
        )
        for s in config.personalization.services
    )
    return dataclasses.replace(
        config,
        endpoint=endpoint,
        registry=registry,
        personalization=dataclasses.replace(config.personalization, services=services),
    )


def _merge_env(p: Problems, raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            p.add(section, "must be a table", f"check {name}")
            continue
        target[key] = _EnvValue(value, name)


@dataclass(frozen=True)
class _EnvValue:
    """A string from the environment, converted to the key's type when the key is known."""

    text: str
    variable: str


def _refuse_file_secrets(p: Problems, raw: dict[str, Any]) -> None:
    """A secret in the TOML file ends up in version control and config dumps: refuse it."""
    for section, keys in _ENV_SECRETS.items():
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        for key in keys:
            for name in (key, f"{key}_file"):
                if name in table:
                    del table[name]
                    variable = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
                    p.add(
                        f"{section}.{name}",
                        "secrets are not read from the config file",
                        f"set {variable} or {variable}_FILE instead",
                    )


def _read_secret_file(variable: str, file_name: str) -> str:
    try:
        return Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            variable,
            f"cannot read {file_name!r}: {exc.strerror}",
            "point it at a readable file holding the secret",
        ) from None


def _merge_secret_files(p: Problems, raw: dict[str, Any]) -> None:
    """``FORWARDER_<SECTION>__<SECRET>_FILE`` (a mounted Kubernetes secret) wins over the
    value."""
    for section, keys in _ENV_SECRETS.items():
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        for key in keys:
            named = table.pop(f"{key}_file", None)
            if isinstance(named, _EnvValue) and named.text:
                with p.gather():
                    text = _read_secret_file(named.variable, named.text)
                    table[key] = _EnvValue(text, named.variable)


def _merge_secrets(p: Problems, raw: dict[str, Any], env: Mapping[str, str]) -> None:
    endpoint = raw.setdefault("endpoint", {})
    if not isinstance(endpoint, dict):
        return  # reported by _build
    for key, variable in (("api_key", "TD_API_KEY"), ("wp13n_token", "TD_WP13N_TOKEN")):
        if key in endpoint and not isinstance(endpoint[key], _EnvValue):
            del endpoint[key]
            p.add(
                f"endpoint.{key}",
                "secrets are not read from the config file",
                f"set {variable} or {variable}_FILE instead",
            )
        value = None
        with p.gather():
            value = read_secret(env, variable)
        if value:
            endpoint[key] = Secret(value.strip())
        elif isinstance(endpoint.get(key), _EnvValue):
            endpoint[key] = Secret(endpoint[key].text)


def read_secret(env: Mapping[str, str], variable: str) -> str | None:
    """``variable`` from the environment, or the content of the file ``variable_FILE`` names."""
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
    return value


def _build(p: Problems, raw: dict[str, Any], need_secrets: bool = True) -> Config:
    """The ``Config``, with a default standing in for every value that has a problem."""
    for section in sorted(set(raw) - set(_SECTIONS) - set(_FREE_SECTIONS)):
        p.add(section, "unknown section", _suggest(section, [*_SECTIONS, *_FREE_SECTIONS]))
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            p.add(section, "must be a table", f"write it as [{section}]")
            table = {}
        built[section] = _build_section(p, section, cls, table)
    built["routes"] = _build_routes(p, raw.get("routes", {}))
    built["policy"] = _build_policy(p, raw.get("policy", {}))
    built["personalization"] = build_personalization(
        p, raw.get("personalization", {}), built["kafka"], built["endpoint"], need_secrets, _coerce
    )
    config = Config(**built)
    check(p, config, need_secrets)
    return config


def _build_section(p: Problems, section: str, cls: type[Any], table: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            p.add(f"{section}.{key}", "unknown key", _suggest(key, list(fields)))
        elif (section, key) in _SECRET_KEYS:
            values[key] = value
        else:
            with p.gather():
                values[key] = _coerce(f"{section}.{key}", value, hints[key])
    return cls(**values)


def _build_routes(p: Problems, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        p.add("routes", "must be a table", 'write it as [routes] page_view = "db.table"')
        return {}
    routes: dict[str, str] = {}
    for event_type, value in table.items():
        text = value.text if isinstance(value, _EnvValue) else value
        if not isinstance(text, str) or not is_destination(text):
            p.add(
                f"routes.{event_type}",
                f"{text!r} is not a database.table",
                "names are 3-255 characters of a-z, 0-9 and _",
            )
        else:
            routes[event_type] = text
    return routes


def _build_policy(p: Problems, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        p.add("policy", "must be a table", 'write it as [policy] "400:3004" = "isolate"')
        return {}
    policy: dict[str, str] = {}
    for key, value in table.items():
        text = value.text if isinstance(value, _EnvValue) else value
        if not POLICY_KEY.match(str(key)):
            p.add(
                f"policy.{key}",
                "is not a status or status:code",
                'e.g. "500", "400:3004" or "transport"',
            )
        elif text not in POLICY_ACTIONS:
            p.add(
                f"policy.{key}",
                f"{text!r} is not an action",
                f"use one of {', '.join(POLICY_ACTIONS)}",
            )
        else:
            policy[str(key)] = text
    return policy


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    env_name = value.variable if isinstance(value, _EnvValue) else None
    where = f" (from {env_name})" if env_name else ""
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return _coerce_union(key, value, typing.get_args(hint), where)
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
    raise AssertionError(f"unsupported config type {hint!r} for {key}")


def _coerce_union(key: str, value: Any, choices: tuple[Any, ...], where: str) -> Any:
    """The first of ``choices`` (``int | Literal["adaptive"]``) the value converts to."""
    for choice in choices:
        try:
            return _coerce(key, value, choice)
        except ConfigError:
            continue
    shown = value.text if isinstance(value, _EnvValue) else value
    names = [
        "an integer" if c is int else " or ".join(map(repr, typing.get_args(c))) for c in choices
    ]
    raise ConfigError(
        key,
        f"expected {' or '.join(names)}, got {shown!r}{where}",
        f"use {' or '.join(names)}",
    )


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
