"""The registry client against an in-memory HTTP registry: every answer becomes a value."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from forwarder.adapters.registry_client import RegistryClient, RegistryError
from forwarder.config import RegistryConfig, Secret
from forwarder.core.writer_schemas import FetchedSchema
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaMissing

URL = "https://registry.example/apis/ccompat/v7"
ROOT = '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "a.json"}'


def _client(handler: Callable[[httpx.Request], httpx.Response], **config: object) -> RegistryClient:
    settings = RegistryConfig(url=URL, **config)  # type: ignore[arg-type]
    return RegistryClient(settings, transport=httpx.MockTransport(handler))


def _registry(requests: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    """Schema 7 references a.json (subject a, version 1), which references b.json."""
    documents = {
        "/apis/ccompat/v7/schemas/ids/7": {
            "schema": ROOT,
            "schemaType": "JSON",
            "references": [{"name": "a.json", "subject": "a", "version": 1}],
        },
        "/apis/ccompat/v7/subjects/a/versions/1": {
            "schema": '{"$ref": "b.json"}',
            "references": [{"name": "b.json", "subject": "b/x", "version": 2}],
        },
        "/apis/ccompat/v7/subjects/b%2Fx/versions/2": {"schema": '{"type": "string"}'},
    }

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        path = request.url.raw_path.decode()
        if path in documents:
            return httpx.Response(200, json=documents[path])
        return httpx.Response(404, json={"error_code": 40403, "message": "not found"})

    return handle


async def test_a_schema_comes_with_its_references_nested_ones_too() -> None:
    requests: list[httpx.Request] = []
    client = _client(_registry(requests), username="key", password=Secret("secret"))
    outcome = await client.fetch(7)
    await client.aclose()
    assert outcome == SchemaFound(
        FetchedSchema(
            "JSON", ROOT, (("a.json", '{"$ref": "b.json"}'), ("b.json", '{"type": "string"}'))
        )
    )
    assert [r.url.raw_path.decode() for r in requests] == [
        "/apis/ccompat/v7/schemas/ids/7",
        "/apis/ccompat/v7/subjects/a/versions/1",
        "/apis/ccompat/v7/subjects/b%2Fx/versions/2",
    ]
    expected = "Basic " + base64.b64encode(b"key:secret").decode()
    assert {r.headers["authorization"] for r in requests} == {expected}


async def test_an_unknown_id_is_missing_an_event_fault() -> None:
    outcome = await _client(_registry([])).fetch(99)
    assert isinstance(outcome, SchemaMissing)
    assert "schema id 99" in outcome.detail and "40403" in outcome.detail


@pytest.mark.parametrize(
    ("response", "kind", "says"),
    [
        (httpx.Response(401, json={"error_code": 401}), "unauthorized", "registry.username"),
        (httpx.Response(403), "unauthorized", "FORWARDER_REGISTRY__PASSWORD"),
        (httpx.Response(500, json={"error_code": 50001}), "status", "500"),
        (httpx.Response(503, text="upstream down"), "status", "503"),
        # A 404 that is not the registry's "no such schema": a wrong URL must not dead-letter.
        (httpx.Response(404, text="<html>Not Found</html>"), "status", "check registry.url"),
        (httpx.Response(200, text="<html>login</html>"), "answer", "holds no schema"),
    ],
)
async def test_a_registry_that_fails_is_unavailable_not_the_events_fault(
    response: httpx.Response, kind: str, says: str
) -> None:
    outcome = await _client(lambda request: response).fetch(7)
    assert isinstance(outcome, RegistryUnavailable)
    assert outcome.kind == kind and says in outcome.detail


@pytest.mark.parametrize(
    ("error", "kind"),
    [(httpx.ConnectError("refused"), "connection"), (httpx.ReadTimeout("slow"), "timeout")],
)
async def test_transport_errors_are_unavailable_and_quote_no_url(
    error: Exception, kind: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    client = _client(fail, username="key", password=Secret("hunter2"))
    outcome = await client.fetch(7)
    assert isinstance(outcome, RegistryUnavailable) and outcome.kind == kind
    assert "hunter2" not in outcome.detail and "registry.example" not in outcome.detail


async def test_a_missing_reference_makes_the_schema_missing() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/schemas/ids/7"):
            body = {
                "schema": ROOT,
                "references": [{"name": "a.json", "subject": "a", "version": 3}],
            }
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"error_code": 40402, "message": "Version not found"})

    outcome = await _client(handle).fetch(7)
    assert isinstance(outcome, SchemaMissing) and "reference 'a.json'" in outcome.detail


async def test_a_schema_without_a_type_is_avro_as_the_confluent_api_says() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"schema": '{"type": "record"}'})

    outcome = await _client(handle).fetch(1)
    assert isinstance(outcome, SchemaFound) and outcome.schema.schema_type == "AVRO"


async def test_register_posts_a_json_schema_with_its_references() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/subjects/bad/versions"):
            return httpx.Response(409, json={"error_code": 409, "message": "incompatible"})
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json={"id": 12})
        return httpx.Response(200, json={"id": 12, "version": 3, "subject": "x"})

    client = _client(handle)
    assert await client.register("clicks-page_view", ROOT, [("a.json", "a", 1)]) == (12, 3)
    assert [r.url.path for r in seen] == [
        "/apis/ccompat/v7/subjects/clicks-page_view/versions",
        "/apis/ccompat/v7/subjects/clicks-page_view",
    ]
    body = json.loads(seen[0].content)
    assert body == {
        "schemaType": "JSON",
        "schema": ROOT,
        "references": [{"name": "a.json", "subject": "a", "version": 1}],
    }
    with pytest.raises(RegistryError, match="409"):
        await client.register("bad", ROOT)
