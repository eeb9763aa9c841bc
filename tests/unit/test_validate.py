"""``forwarder validate`` on framed values: with and without a registry, and a registry down."""

from __future__ import annotations

import json

import orjson
import pytest

from forwarder.commands.validate import validate_file
from forwarder.config import load_config
from forwarder.core.framing import frame
from forwarder.core.writer_schemas import FetchedSchema
from forwarder.errors import FatalError
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaLookup, SchemaMissing

EVENT = {
    "event_id": "ev-1",
    "event_type": "page_view",
    "user_id": "u1",
    "timestamp": "2026-11-22T10:30:00Z",
}
WRITER = json.dumps({"type": "object", "properties": {"price": {"minimum": 0}}})


class Registry:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.asked: list[int] = []
        self.closed = False

    async def fetch(self, schema_id: int) -> SchemaLookup:
        self.asked.append(schema_id)
        if self.down:
            return RegistryUnavailable("connection", "ConnectError asking for schema id 1")
        if schema_id == 1:
            return SchemaFound(FetchedSchema("JSON", WRITER))
        return SchemaMissing(f"schema id {schema_id} is not in the registry")

    async def aclose(self) -> None:
        self.closed = True


DATA = b"\n".join(
    [
        frame(1, orjson.dumps(EVENT)),  # no page_url: the local schema would refuse it
        frame(1, orjson.dumps({**EVENT, "price": -1})),
        frame(1, orjson.dumps(EVENT)),
        frame(2, orjson.dumps(EVENT)),
    ]
)


def test_with_a_registry_each_id_is_asked_once_and_writer_schemas_decide() -> None:
    config = load_config(
        None, {"FORWARDER_REGISTRY__URL": "https://registry.example"}, need_secrets=False
    )
    registry = Registry()
    total, failures = validate_file(DATA, config, client=registry)
    assert total == 4
    assert [(f.line, f.reason, f.path) for f in failures] == [
        (2, "schema_violation", "/price"),
        (4, "unknown_schema", ""),
    ]
    assert sorted(registry.asked) == [1, 2] and registry.closed


def test_without_a_registry_framed_values_meet_the_local_schemas() -> None:
    total, failures = validate_file(
        DATA, load_config(None, {}, need_secrets=False), client=Registry()
    )
    assert total == 4
    assert {f.reason for f in failures} == {"schema_violation"}
    assert [f.path for f in failures] == ["", "", "", ""]  # page_url is required locally


def test_a_registry_that_cannot_be_asked_stops_with_the_key_to_check() -> None:
    config = load_config(
        None, {"FORWARDER_REGISTRY__URL": "https://registry.example"}, need_secrets=False
    )
    with pytest.raises(FatalError, match=r"https://registry.example \(registry.url\)"):
        validate_file(DATA, config, client=Registry(down=True))
