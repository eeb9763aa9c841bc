"""A client of a schema registry's Confluent-compatible REST API: a schema by its id.

``GET /schemas/ids/{id}``, then each of its ``references`` (``GET /subjects/{subject}/versions/
{version}``), nested ones too. Every outcome is a value: ``SchemaFound`` (the schema and the text of
what it references), ``SchemaMissing`` (the registry answered 404 with error code 40403: no such
id, an event fault) or ``RegistryUnavailable`` (down, slow, refusing the credentials, an answer that
is not a registry's: not the events' fault). A 404 without 40403 is ``RegistryUnavailable``: a wrong
``registry.url`` (Apicurio's API is under ``/apis/ccompat/v7``) must not dead-letter a stream.

A small client over the project's httpx rather than ``confluent-kafka[schemaregistry]``:
only two GETs are needed, and that package brings librdkafka (a 16 MB C extension), Authlib,
joserfc, httpx2, httpcore2, cachetools and truststore, adds 0.2-0.3 s and 27 MB to
start-up, and its deserializer validates with the ``jsonschema`` package at 80 us per event
(jsonschema-rs here: under 1 us).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from forwarder.adapters.http_sink import trust
from forwarder.config import RegistryConfig
from forwarder.core.writer_schemas import FetchedSchema
from forwarder.errors import ForwarderError
from forwarder.ports import RegistryUnavailable, SchemaFound, SchemaLookup, SchemaMissing

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
NOT_FOUND_CODE = 40403
# A schema and everything it references, transitively: more is a registry loop or abuse.
MAX_DOCUMENTS = 64


class RegistryError(ForwarderError):
    """A registration failed (``forwarder traffic`` and the demo register their schemas)."""


class _Answer(Exception):
    """How a request ended when it did not give a schema; turned into a value by ``fetch``."""

    def __init__(self, outcome: SchemaMissing | RegistryUnavailable) -> None:
        self.outcome = outcome


def _error_code(body: bytes) -> int | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = parsed.get("error_code") if isinstance(parsed, dict) else None
    return code if isinstance(code, int) else None


class RegistryClient:
    def __init__(
        self, config: RegistryConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """``transport``: the tests' in-memory one; by default, TLS and proxy per ``config``."""
        self._config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return self._config.url

    def _http(self) -> httpx.AsyncClient:
        # Made on first use: a forwarder that never meets a framed event opens nothing.
        if self._client is None:
            c = self._config
            transport = self._transport or httpx.AsyncHTTPTransport(
                verify=trust(c.ca_file), proxy=httpx.Proxy(c.proxy) if c.proxy else None
            )
            self._client = httpx.AsyncClient(
                base_url=c.url.rstrip("/") + "/",
                auth=(c.username, c.password.reveal()) if c.username else None,
                headers={"Accept": CONTENT_TYPE},
                timeout=httpx.Timeout(c.timeout_s),
                transport=transport,
            )
        return self._client

    async def fetch(self, schema_id: int) -> SchemaLookup:
        """The schema of ``schema_id`` with its references; never raises."""
        try:
            root = await self._get(f"schemas/ids/{schema_id}", f"schema id {schema_id}")
            references = await self._references(root)
        except _Answer as answer:
            return answer.outcome
        return SchemaFound(
            FetchedSchema(str(root.get("schemaType") or "AVRO"), root["schema"], references)
        )

    async def _references(self, root: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """Every schema ``root`` references, nested ones included, each fetched once."""
        fetched: dict[str, str] = {}
        queue = list(root.get("references") or ())
        seen: set[tuple[str, int]] = set()
        while queue:
            ref = queue.pop(0)
            if not isinstance(ref, dict):
                raise _Answer(RegistryUnavailable("answer", "a reference is not an object"))
            name, subject, version = ref.get("name"), ref.get("subject"), ref.get("version")
            if not isinstance(name, str) or not isinstance(subject, str):
                raise _Answer(
                    RegistryUnavailable("answer", f"a reference without name or subject: {ref}")
                )
            if (subject, version) in seen or name in fetched:
                continue
            if len(seen) >= MAX_DOCUMENTS:
                raise _Answer(SchemaMissing(f"more than {MAX_DOCUMENTS} schemas referenced"))
            seen.add((subject, version))  # type: ignore[arg-type]
            what = f"reference {name!r} (subject {subject!r} version {version})"
            answer = await self._get(f"subjects/{quote(subject, safe='')}/versions/{version}", what)
            fetched[name] = answer["schema"]
            queue.extend(answer.get("references") or ())
        return tuple(fetched.items())

    async def _get(self, path: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http().get(path)
        except httpx.TimeoutException as exc:
            raise _Answer(
                RegistryUnavailable("timeout", f"{type(exc).__name__} asking for {what}")
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            # The type only: the text may quote the URL with its credentials.
            raise _Answer(
                RegistryUnavailable("connection", f"{type(exc).__name__} asking for {what}")
            ) from None
        status = response.status_code
        if status == 404 and _error_code(response.content) in (NOT_FOUND_CODE, 40401, 40402):
            raise _Answer(
                SchemaMissing(
                    f"{what} is not in the registry (404, error {_error_code(response.content)})"
                )
            )
        if status in (401, 403):
            raise _Answer(
                RegistryUnavailable(
                    "unauthorized",
                    f"{status} asking for {what}: check registry.username and "
                    "FORWARDER_REGISTRY__PASSWORD",
                )
            )
        if status != 200:
            hint = " (not a registry's answer: check registry.url)" if status == 404 else ""
            raise _Answer(RegistryUnavailable("status", f"{status} asking for {what}{hint}"))
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise _Answer(RegistryUnavailable("answer", f"the answer for {what} holds no schema"))
        return body

    async def register(
        self, subject: str, schema: str, references: Sequence[tuple[str, str, int]] = ()
    ) -> tuple[int, int]:
        """Register a JSON Schema under ``subject`` (references: name, subject, version): its
        id and version. For ``forwarder traffic`` and the demo; raises ``RegistryError``."""
        body = orjson.dumps(
            {
                "schemaType": "JSON",
                "schema": schema,
                "references": [{"name": n, "subject": s, "version": v} for n, s, v in references],
            }
        )
        path = f"subjects/{quote(subject, safe='')}"
        # Registering returns the id; asking the subject about the schema gives its version.
        registered = await self._post(f"{path}/versions", body, subject)
        found = await self._post(path, body, subject)
        return int(registered["id"]), int(found["version"])

    async def _post(self, path: str, body: bytes, subject: str) -> dict[str, Any]:
        try:
            response = await self._http().post(
                path, content=body, headers={"Content-Type": CONTENT_TYPE}
            )
        except (httpx.HTTPError, OSError) as exc:
            raise RegistryError(
                f"registering {subject} at {self.url}: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise RegistryError(
                f"registering {subject} at {self.url}: {response.status_code} {response.text[:300]}"
            )
        answer: dict[str, Any] = orjson.loads(response.content)
        return answer

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
