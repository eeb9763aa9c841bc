"""The writer schemas of framed events (``forwarder.core.framing``), by schema id. Pure.

``WriterSchemas`` holds what is known of each schema id: a compiled validator (ids are
immutable, so it is kept for good) or why the id cannot be used (``unknown_schema``: the
registry does not know it, or it is not a JSON Schema, or it does not compile; such an
answer is trusted for ``MISSING_TTL_S``, then asked again). The registry is asked by an
adapter (``forwarder.adapters.registry_client``), never by decoding: an id not looked up
decodes as ``NOT_LOOKED_UP``, and the pipeline rewinds the partition to that record, has
the ids from there on (:meth:`WriterSchemas.unresolved`) looked up, and decodes it again. Without a registry (``registry.url`` empty) a framed event is unwrapped and
validated against the local schemas alone.

Which schema validates a framed event: its writer schema; then, with
``registry.local_schemas``, also the local schema of its ``event_type``; without it, its
``event_type`` must still be one the forwarder routes (a local schema or a ``[routes]``
entry), so destinations and metric labels stay a configured set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import jsonschema_rs
import orjson

from forwarder.core.framing import HEADER_BYTES, MAGIC, NOT_LOOKED_UP
from forwarder.core.headers import Failure
from forwarder.core.records import RecordLike
from forwarder.core.schemas import SchemaRegistry, ValidationFailure, first_error

# How long "the registry does not know this id" is believed before it is asked again.
MISSING_TTL_S = 60.0
# The base URI of a registry schema without ``$id``: its references' relative names
# (``common.json``) resolve against it.
REGISTRY_BASE = "https://forwarder.local/registry/ids/"


@dataclass(frozen=True, slots=True)
class FetchedSchema:
    """A schema as the registry serves it: its type, its text, and the text of every schema
    it references (nested ones included), by the reference's name."""

    schema_type: str  # "JSON", "AVRO" or "PROTOBUF"
    schema: str
    references: tuple[tuple[str, str], ...] = ()


def _refuse(uri: str) -> Any:
    # jsonschema-rs would fetch an unknown $ref over the network: a writer schema may only
    # use what the registry gave with it.
    raise ValueError(f"{uri} is not among the schema's references")


def compile_writer(schema_id: int, fetched: FetchedSchema) -> Any:
    """A jsonschema-rs validator for ``fetched``, or the reason (a ``str``) it cannot be used."""
    if fetched.schema_type.upper() != "JSON":
        return f"schema id {schema_id} is an {fetched.schema_type} schema, not a JSON Schema"
    try:
        root = orjson.loads(fetched.schema)
        documents = [(name, orjson.loads(text)) for name, text in fetched.references]
    except orjson.JSONDecodeError as exc:
        return f"schema id {schema_id} (or a reference) is not JSON: {exc}"
    own_id = root.get("$id") if isinstance(root, dict) else None
    base = own_id if isinstance(own_id, str) else f"{REGISTRY_BASE}{schema_id}.json"
    # A reference is found by its name as written in "$ref": absolute, or relative to the base
    # of the schema that refers to it (the root, or a referenced schema with its own $id).
    bases = [base] + [d["$id"] for _, d in documents if isinstance(d, dict) and "$id" in d]
    resources: dict[str, Any] = {}
    for name, document in documents:
        resources.setdefault(name, document)
        for referrer in bases:
            if isinstance(referrer, str):
                resources.setdefault(urljoin(referrer, name), document)
    try:
        registry = (
            jsonschema_rs.Registry(list(resources.items()), retriever=_refuse)
            if resources
            else None
        )
        return jsonschema_rs.validator_for(
            root, validate_formats=True, registry=registry, retriever=_refuse, base_uri=base
        )
    except Exception as exc:  # jsonschema-rs raises ValueError-likes of its own
        message = str(exc).split("\n", 1)[0]
        return f"schema id {schema_id} does not compile: {message}"


class WriterCheck:
    """Validates a framed event: its writer schema, then its ``event_type`` (see module doc)."""

    __slots__ = ("_known", "_local", "_schema_id", "_validator")

    def __init__(
        self, schema_id: int, validator: Any, local: SchemaRegistry | None, known: frozenset[str]
    ) -> None:
        self._schema_id = schema_id
        self._validator = validator
        self._local = local
        self._known = known

    def validate(self, event: dict[str, Any]) -> ValidationFailure | None:
        if not self._validator.is_valid(event):
            failure = first_error(self._validator, event)
            return ValidationFailure(
                failure.reason,
                failure.path,
                f"{failure.detail} (writer schema id {self._schema_id})",
            )
        if self._local is not None:
            return self._local.validate(event)
        event_type = event.get("event_type")
        if isinstance(event_type, str) and event_type in self._known:
            return None
        shown = repr(event_type)[:60] if event_type is not None else "missing"
        return ValidationFailure(
            "unknown_event_type",
            "/event_type",
            f"/event_type: {shown} has no local schema nor [routes] entry "
            f"(known: {', '.join(sorted(self._known))})",
        )


class WriterSchemas:
    """What is known of each schema id; filled by the lookups, read by the decoder."""

    def __init__(
        self,
        local: SchemaRegistry,
        *,
        registry: bool,
        local_schemas: bool = False,
        routes: Iterable[str] = (),
    ) -> None:
        """``registry``: ids are looked up (``registry.url`` is set); else the local schemas
        validate framed events, unwrapped. ``local_schemas``: they apply after the writer
        schema too. ``routes``: event types with a ``[routes]`` entry."""
        self._local = local
        self.registry = registry
        self._also_local = local if local_schemas else None
        self._known = frozenset([*local.event_types, *routes])
        self._checks: dict[int, WriterCheck] = {}
        # The same checks by the header that names them: what the hot paths look up.
        self.by_header: dict[bytes, WriterCheck] = {}
        self._missing: dict[int, tuple[Failure, float]] = {}  # id -> (failure, believed until)

    @property
    def cached(self) -> int:
        """How many writer schemas are compiled and kept."""
        return len(self._checks)

    def resolve(self, schema_id: int) -> WriterCheck | SchemaRegistry | Failure:
        """The validator of a framed event with this id, or why it is dead-lettered."""
        if not self.registry:
            return self._local
        check = self._checks.get(schema_id)
        if check is not None:
            return check
        missing = self._missing.get(schema_id)
        if missing is not None:
            return missing[0]
        return NOT_LOOKED_UP

    def expire(self, now: float) -> None:
        """Forget the "not found" answers that are too old: those ids are asked again."""
        if self._missing:
            for schema_id in [i for i, (_, until) in self._missing.items() if until <= now]:
                del self._missing[schema_id]

    def unresolved(self, records: Sequence[RecordLike], now: float) -> tuple[int, set[int]] | None:
        """Where in ``records`` the first framed value with an id not known yet is, and every
        such id from there on; None when all can be decoded now. Forgets the "not found"
        answers that are too old, so that those ids are asked again. (The pipeline calls it
        only once decoding met an id not looked up: the decoder's header lookup is the
        cheap test, this walk is not.)"""
        if not self.registry:
            return None
        known, missing = self.by_header, self._missing
        first = -1
        wanted: set[int] = set()
        for index, record in enumerate(records):
            value = record.value
            if not value or value[:1] != MAGIC or value[:HEADER_BYTES] in known:
                continue
            if len(value) < HEADER_BYTES:
                continue  # decoded as invalid_json
            schema_id = int.from_bytes(value[1:HEADER_BYTES], "big")
            entry = missing.get(schema_id)
            if entry is not None and entry[1] > now:
                continue
            if entry is not None:
                del missing[schema_id]
            wanted.add(schema_id)
            if first < 0:
                first = index
        return (first, wanted) if wanted else None

    def learn(self, schema_id: int, fetched: FetchedSchema | None, detail: str, now: float) -> None:
        """The registry's answer for an id: the schema, or None with why it is not there."""
        compiled = compile_writer(schema_id, fetched) if fetched is not None else detail
        if isinstance(compiled, str):
            self._missing[schema_id] = (Failure("unknown_schema", compiled), now + MISSING_TTL_S)
            return
        self._missing.pop(schema_id, None)
        check = WriterCheck(schema_id, compiled, self._also_local, self._known)
        self._checks[schema_id] = check
        self.by_header[MAGIC + schema_id.to_bytes(4, "big")] = check

    def known(self, schema_id: int, now: float) -> bool:
        """Whether the id is answered for (found, or missing and still believed)."""
        if schema_id in self._checks:
            return True
        entry = self._missing.get(schema_id)
        return entry is not None and entry[1] > now
