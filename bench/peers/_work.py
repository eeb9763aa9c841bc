"""The per-event work both peers do, written the way a user of each would write it.

Imported by ``naive_asyncio.py`` and ``quix_app.py`` (run as scripts from this folder), so it
imports neither the ``forwarder`` package nor anything but ``orjson``, ``jsonschema_rs`` and
the standard library: the quixstreams peer runs in its own virtual environment.

The work is the forwarder's (``forwarder/core/decode.py``, ``forwarder/core/schemas.py``,
``forwarder/adapters/http_sink.py``), not its code:

- parse the record's value (orjson), validate it against the JSON Schema of its
  ``event_type`` in ``schemas/`` (jsonschema-rs, draft 2020-12, formats checked, shared
  definitions such as ``common.json`` reached through ``$ref``);
- set ``uuid``: UUIDv5 of ``event_id`` in the forwarder's namespace (``uuid.uuid5`` of the
  standard library, as a user would), else of ``topic/partition/offset``; set ``time`` (Unix
  seconds) unless it is an integer already: from the RFC 3339 ``timestamp``, else from the
  Kafka timestamp;
- encode the event again (orjson) and post batches of up to 500 events per event type to
  ``/<database>/<event_type>`` with the forwarder's headers and body ``{"events":[...]}``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

# Must equal forwarder.core.decode.UUID_NAMESPACE: bench_peers.py checks it, and compares the
# uuids each contender delivered.
UUID_NAMESPACE = uuid.UUID("6f1c9a52-4d0e-5b8a-9f57-2a3c1e7d9b40")
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ID_BASE = "https://forwarder.local/schemas/"
CONTENT_TYPE = "application/vnd.treasuredata.v1+json"
MAX_EVENTS = 500
DATABASE = "clickstream"


def headers() -> dict[str, str]:
    """The forwarder's request headers (realtime profile); credentials from the environment."""
    return {
        "Content-Type": CONTENT_TYPE,
        "Accept": CONTENT_TYPE,
        "Authorization": f"TD1 {os.environ['TD_API_KEY']}",
        "WP13n-Token": os.environ["TD_WP13N_TOKEN"],
    }


def body_of(encoded: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(encoded) + b"]}"


def path_of(event_type: str) -> str:
    return f"/{DATABASE}/{event_type}"


def load_validators(directory: Path = SCHEMAS) -> dict[str, Any]:
    """One validator per event type, as the forwarder's schema registry builds them."""
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
    events = {
        name: doc
        for name, doc in docs.items()
        if doc.get("properties", {}).get("event_type", {}).get("const") == name
    }
    resources = [
        (doc.get("$id") or f"{ID_BASE}{name}.json", doc)
        for name, doc in docs.items()
        if name not in events
    ]
    resources += [(doc.get("$id") or f"{ID_BASE}{name}.json", doc) for name, doc in events.items()]
    registry = jsonschema_rs.Registry(resources)
    return {
        name: jsonschema_rs.validator_for(
            {**doc, "$id": doc.get("$id") or f"{ID_BASE}{name}.json"},
            validate_formats=True,
            registry=registry,
        )
        for name, doc in events.items()
    }


class Work:
    def __init__(self) -> None:
        self.validators = load_validators()

    def valid(self, event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        validator = self.validators.get(event.get("event_type"))
        return validator is not None and validator.is_valid(event)

    @staticmethod
    def enrich(
        event: dict[str, Any], topic: str, partition: int, offset: int, timestamp_ms: int
    ) -> dict[str, Any]:
        """Set ``uuid`` and ``time`` on a valid event (in place) and return it."""
        event_id = event.get("event_id")
        name = (
            event_id if isinstance(event_id, str) and event_id else f"{topic}/{partition}/{offset}"
        )
        event["uuid"] = str(uuid.uuid5(UUID_NAMESPACE, name))
        stamp = event.get("time")
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            derived = None
            text = event.get("timestamp")
            if isinstance(text, str):
                try:
                    parsed = datetime.fromisoformat(text)
                except ValueError:
                    parsed = None
                if parsed is not None:
                    if parsed.tzinfo is None:
                        parsed = parsed.replace(tzinfo=UTC)
                    derived = int(parsed.timestamp())
            if derived is None and timestamp_ms >= 0:
                derived = timestamp_ms // 1000
            if derived is not None:
                event["time"] = derived
        return event

    @staticmethod
    def encode(event: dict[str, Any]) -> bytes:
        return orjson.dumps(event)
