"""The configuration reference (``docs/configuration.md``) and the JSON Schema of the file
(``deploy/forwarder.schema.json``), both rendered from the model's field metadata.

Each key's meaning is the ``doc`` of its field in ``_model``; its type and default come from
the field itself. ``forwarder config reference`` and ``forwarder config schema`` print them (``-o`` writes them), and
``tests/unit/test_config_reference.py`` fails when the committed files differ.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from forwarder.config._loading import ENV_PREFIX, load_raw
from forwarder.config._model import NAME, POLICY_ACTIONS, POLICY_KEY, Config, Secret
from forwarder.errors import ConfigError

REFERENCE_PATH = "docs/configuration.md"
SCHEMA_PATH = "deploy/forwarder.schema.json"

# Loaded by the renderer, so the page shows the loader's own words.
_BAD_EXAMPLE = """\
[kafka]
max_pending_per_partition = -5
[endpoint]
region = "us02"
[limits]
max_in_flight = "lots"
"""

_TOP = f"""\
# Configuration

<!-- Generated from forwarder/config/_model.py by `forwarder config reference -o docs/configuration.md`: edit there. -->

`forwarder run --config forwarder.toml` reads one TOML file, e.g.
[deploy/forwarder.toml](../deploy/forwarder.toml); every key has a default.
`forwarder config show --config forwarder.toml` checks a file and prints the effective
configuration, secrets as `***`.

**Environment.** `{ENV_PREFIX}<SECTION>__<KEY>` overrides a key of the file, e.g.
`FORWARDER_KAFKA__BOOTSTRAP_SERVERS=broker:9092`; a list is comma-separated
(`FORWARDER_KAFKA__TOPICS=a,b`), a boolean `true`/`false`.

**Secrets** (type *secret* below) are never read from the file: one written there is refused,
naming the variable to use. Each comes from its variable, or from the file that the same name
with `_FILE` appended names (`TD_API_KEY_FILE=/var/run/secrets/td/api-key`, as Kubernetes
mounts secrets).

**Errors.** A file with mistakes stops start-up (exit code 2) with all of them, each naming
the key (or variable) and the fix:

```toml
{_BAD_EXAMPLE}```

```
error: {{errors}}
```

**Editors.** [deploy/forwarder.schema.json](../deploy/forwarder.schema.json) is a JSON Schema of
the file (`forwarder config schema`). Editors that use taplo (VS Code's Even Better TOML, and
others) check keys, types and choices as you type when the file's first line names it:
`#:schema ./forwarder.schema.json`, a path relative to the file. Ranges and rules between keys
are checked at start-up.
"""

_SECTION_NOTES = {
    "policy": """\
A code-specific entry wins over a status entry; an unlisted 5xx or 408 retries, any other
unlisted status dead-letters ([design.md](../../shared/design.md) section 1).

```toml
[policy]
"400:3004" = "isolate"   # the default: find the bad events by splitting the batch
"401" = "dead-letter"    # rather than pause: only if losing the stream to the DLQ is acceptable
```
""",
    "personalization": """\
None by default. Errors name the service by its place, e.g.
`personalization.services[0].cache_ttl_s`.

```toml
[[personalization.services]]
name = "product_recommendations"
parent_segment_id = "394649"
triggers = ["product_view"]
context = { page_url = "page_url", current_product_id = "product_id" }
fallback_outputs = { recommended_products = ["bestseller_1", "bestseller_2"] }
```
""",
}


# A scalar key's type, by its name in JSON Schema (and on the page).
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _fields(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("doc"):
            raise AssertionError(f"{cls.__name__}.{f.name} has no doc in its field metadata")
        yield f, hints[f.name]


def _is_section(hint: Any) -> bool:
    return dataclasses.is_dataclass(hint)


def _item_type(hint: Any) -> Any:
    return typing.get_args(hint)[0]


# -- the page ------------------------------------------------------------------------------


def render_reference() -> str:
    """The whole of ``docs/configuration.md``."""
    parts = [_TOP.replace("{errors}", _errors_example()), "## Sections\n"]
    parts.append(
        " · ".join(f"[{f.name}](#{f.name.replace('.', '')})" for f in dataclasses.fields(Config))
        + "\n"
    )
    for f, hint in _fields(Config):
        parts.append(f"## {f.name}\n")
        if _is_section(hint):  # a free-form table says it all in its one row
            parts.append(f"{f.metadata['doc']}\n")
        if f.name in _SECTION_NOTES:
            parts.append(_SECTION_NOTES[f.name])
        if _is_section(hint):
            rows = [
                (f"{f.name}.{g.name}", g, h) for g, h in _fields(hint) if not _is_list_of_tables(h)
            ]
            parts.append(_table(rows))
            for g, h in _fields(hint):  # [[section.list]]: a table of its own
                if _is_list_of_tables(h):
                    parts.append(f"### [[{f.name}.{g.name}]]\n\n{g.metadata['doc']}\n")
                    parts.append(_table([(s.name, s, t) for s, t in _fields(_item_type(h))]))
        else:  # a free-form table: one row for its keys
            value = typing.get_args(hint)[1]
            parts.append(_table([(f"{f.name}.{f.metadata['key']}", f, value)]))
    return "\n".join(parts)


def _errors_example() -> str:
    env = {"TD_API_KEY": "1/x", "TD_WP13N_TOKEN": "1/2/x"}
    try:
        load_raw(tomllib.loads(_BAD_EXAMPLE), env)
    except ConfigError as exc:
        return str(exc)
    raise AssertionError("the example of mistakes loaded without an error")


def _is_list_of_tables(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple and _is_section(_item_type(hint))


def _table(rows: list[tuple[str, dataclasses.Field[Any], Any]]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, f, hint in rows:
        doc = f.metadata["doc"]
        if hint is Secret:
            variable = f.metadata["env"]
            doc = f"{doc}; from `{variable}` or `{variable}_FILE`"
        if name.startswith("policy."):  # a free-form table of actions
            kind = ", ".join(f'`"{action}"`' for action in POLICY_ACTIONS)
        else:
            kind = _type_name(hint)
        lines.append(f"| `{name}` | {kind} | {_default(f, hint)} | {doc} |")
    return "\n".join(lines) + "\n"


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin is Literal:
        return ", ".join(f'`"{choice}"`' for choice in typing.get_args(hint))
    if origin is tuple:
        item = _item_type(hint)
        return "list of tables" if _is_section(item) else f"list of {_type_name(item)}s"
    if origin is Mapping:
        value = typing.get_args(hint)[1]
        return "table" if value is Any else f"table of {_type_name(value)}s"
    return "secret" if hint is Secret else _SCALARS[hint]


def _default(f: dataclasses.Field[Any], hint: Any) -> str:
    if f.metadata.get("shown"):
        shown: str = f.metadata["shown"]
        return shown if shown.startswith("`") or shown == "required" else f"`{shown}`"
    if _is_mapping(hint) and f.default_factory is not dataclasses.MISSING:
        return "`{}`"
    if hint is Secret or f.default is dataclasses.MISSING:
        return "—"
    return f"`{_toml(f.default)}`"


def _is_mapping(hint: Any) -> bool:
    return typing.get_origin(hint) is Mapping


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{}" if not value else "{ ... }"
    return str(value)


# -- the JSON Schema -----------------------------------------------------------------------


def render_schema() -> str:
    """``deploy/forwarder.schema.json``: the file's keys, types, choices, defaults, meanings."""
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "forwarder.toml",
        "description": "The forwarder's configuration file; see docs/configuration.md.",
        **_object(Config),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _object(cls: type[Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f, hint in _fields(cls):
        if hint is Secret:  # never in the file
            continue
        prop = _property(f.name, hint)
        prop["description"] = f.metadata["doc"].replace("`", "")
        if f.default is not dataclasses.MISSING:
            prop["default"] = _json(f.default)
        if f.metadata.get("shown") == "required":
            required.append(f.name)
        properties[f.name] = prop
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    return result


def _property(name: str, hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if _is_section(hint):
        return _object(hint)
    if name == "routes":
        destination = NAME.pattern.strip("^$")
        return {
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "pattern": f"^{destination}\\.{destination}$",
            },
        }
    if name == "policy":
        return {
            "type": "object",
            "propertyNames": {"pattern": POLICY_KEY.pattern},
            "additionalProperties": {"enum": list(POLICY_ACTIONS)},
        }
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return {"anyOf": [_property(name, h) for h in typing.get_args(hint)]}
    if origin is Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin is tuple:
        return {"type": "array", "items": _property(name, _item_type(hint))}
    if origin is Mapping:
        value = typing.get_args(hint)[1]
        return {"type": "object"} | (
            {} if value is Any else {"additionalProperties": _property(name, value)}
        )
    return {"type": _SCALARS[hint]}


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
