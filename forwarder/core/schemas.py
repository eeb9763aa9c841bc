"""The schema registry: one JSON Schema (draft 2020-12) per event type, chosen by ``event_type``.

Loaded once at start-up from one or more directories; later directories add event types or
override earlier ones. The rule for what a file is:

- ``<name>.json`` whose top-level ``properties.event_type`` is ``{"const": "<name>"}`` is the
  schema of event type ``<name>``;
- any other ``*.json`` (``common.json``, files starting with ``_``) is a shared definition that
  event schemas reach through ``$ref``, by its ``$id`` or by its file name relative to the
  bundled ``$id`` base (``https://forwarder.local/schemas/``).

A user's schema can therefore ``$ref`` the bundled ``common.json``. Validation is pure and
fast: validators are built once per type, ``is_valid`` runs first, and the error path and
message are computed only for invalid events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from forwarder.core.decode import Validator, WriterLookup, json_type
from forwarder.core.framing import HEADER_BYTES, MAGIC, schema_id_of, short_frame
from forwarder.core.headers import Failure
from forwarder.core.member_names import repeated_member
from forwarder.errors import SchemaLoadError

ID_BASE = "https://forwarder.local/schemas/"
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class ValidationFailure:
    reason: str  # "unknown_event_type" or "schema_violation"
    path: str  # JSON pointer of the failing location in the event; "" for the root
    detail: str


@dataclass(frozen=True, slots=True)
class LineFailure:
    line: int
    reason: str
    path: str
    detail: str


def default_schema_dir() -> Path:
    """The bundled schemas: package data in a wheel, else the repository's ``schemas/``."""
    package = Path(__file__).resolve().parent.parent
    bundled = package / "_schemas"
    if bundled.is_dir():
        return bundled
    return package.parent / "schemas"


def _pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _event_type_of(name: str, schema: dict[str, Any]) -> str | None:
    props = schema.get("properties")
    if isinstance(props, dict):
        declared = props.get("event_type")
        if isinstance(declared, dict) and declared.get("const") == name:
            return name
    return None


class SchemaRegistry:
    def __init__(
        self, schemas: dict[str, dict[str, Any]], shared: dict[str, dict[str, Any]]
    ) -> None:
        """``schemas`` by event type and ``shared`` definitions by URI; see :meth:`from_dirs`."""
        resources = list(shared.items())
        resources += [
            (doc.get("$id") or f"{ID_BASE}{name}.json", doc) for name, doc in schemas.items()
        ]
        try:
            registry = jsonschema_rs.Registry(resources)
        except Exception as exc:  # jsonschema-rs raises plain ValueError-likes here
            raise SchemaLoadError("<registry>", str(exc)) from None
        self._validators: dict[str, Any] = {}
        for name, doc in schemas.items():
            try:
                self._validators[name] = jsonschema_rs.validator_for(
                    {**doc, "$id": doc.get("$id") or f"{ID_BASE}{name}.json"},
                    validate_formats=True,
                    registry=registry,
                )
            except Exception as exc:
                raise SchemaLoadError(f"{name}.json", str(exc)) from None

    @classmethod
    def from_dirs(cls, dirs: Iterable[Path]) -> SchemaRegistry:
        schemas: dict[str, dict[str, Any]] = {}
        shared: dict[str, dict[str, Any]] = {}
        for directory in dirs:
            if not directory.is_dir():
                raise SchemaLoadError(directory, "not a directory")
            for path in sorted(directory.glob("*.json")):
                doc = _load(path)
                event_type = None if path.stem.startswith("_") else _event_type_of(path.stem, doc)
                if event_type is not None:
                    schemas[event_type] = doc
                else:
                    shared[f"{ID_BASE}{path.name}"] = doc
                    if isinstance(doc.get("$id"), str) and doc["$id"] != f"{ID_BASE}{path.name}":
                        shared[doc["$id"]] = doc
        if not schemas:
            raise SchemaLoadError(", ".join(map(str, dirs)), "no event type schemas found")
        return cls(schemas, shared)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._validators)

    def validate(self, event: dict[str, Any]) -> ValidationFailure | None:
        event_type = event.get("event_type")
        validator = self._validators.get(event_type) if isinstance(event_type, str) else None
        if validator is None:
            # Named in JSON terms, never Python's (None, True, 'text', NoneType).
            if "event_type" not in event:
                shown = "missing"
            elif isinstance(event_type, str):
                shown = orjson.dumps(event_type).decode()[:60]
            else:
                shown = f"a JSON {json_type(event_type)}"
            return ValidationFailure(
                "unknown_event_type",
                "/event_type",
                f"/event_type: {shown} is not one of {', '.join(self.event_types)}",
            )
        if validator.is_valid(event):
            return None
        return first_error(validator, event)


def first_error(validator: Any, event: dict[str, Any]) -> ValidationFailure:
    """The ``schema_violation`` of an event ``validator`` rejects, its detail led by the path."""
    # The deepest error names the most specific place: /items/0/quantity, not /items.
    errors = list(validator.iter_errors(event))
    best = max(errors, key=lambda e: len(e.instance_path))
    path = _pointer(best.instance_path)
    message = best.message
    if len(message) > MAX_DETAIL - len(path) - 2:
        message = message[: MAX_DETAIL - len(path) - 5] + "..."
    return ValidationFailure("schema_violation", path, f"{path or '/'}: {message}")


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaLoadError(path, f"cannot be read as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SchemaLoadError(path, "a schema must be a JSON object")
    return doc


def validate_lines(lines: Iterable[bytes], registry: SchemaRegistry) -> Iterator[LineFailure]:
    """Check JSONL lines; yield one failure per bad line (blank lines are skipped)."""
    yield from validate_values(enumerate(lines, start=1), registry)


def validate_values(
    values: Iterable[tuple[int, bytes]],
    registry: SchemaRegistry,
    writers: WriterLookup | None = None,
) -> Iterator[LineFailure]:
    """Check numbered values, bare JSON or framed (``forwarder.core.framing``); yield one
    failure per bad one. Framed ones are validated as ``writers`` says, else by ``registry``."""
    for number, raw in values:
        line = raw if raw[:1] == MAGIC else raw.strip()
        if not line:
            continue
        validator: Validator = registry
        if line[:1] == MAGIC:
            if len(line) < HEADER_BYTES:
                failed = short_frame(line)
                yield LineFailure(number, failed.reason, "", failed.detail)
                continue
            writer = writers.resolve(schema_id_of(line)) if writers is not None else registry
            if isinstance(writer, Failure):
                yield LineFailure(number, writer.reason, "", writer.detail)
                continue
            validator, line = writer, line[HEADER_BYTES:]
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield LineFailure(number, "invalid_json", "", f"not valid JSON: {exc}")
            continue
        if not isinstance(event, dict):
            yield LineFailure(
                number, "not_an_object", "", f"a JSON {json_type(event)}, not an object"
            )
            continue
        repeated = repeated_member(line, event)
        if repeated is not None:  # the forwarder dead-letters these too
            yield LineFailure(number, "invalid_json", "", repeated)
            continue
        failure = validator.validate(event)
        if failure is not None:
            path = getattr(failure, "path", "")
            yield LineFailure(number, failure.reason, path, failure.detail)
