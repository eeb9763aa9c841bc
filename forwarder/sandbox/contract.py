"""The destination's contract as pure checks: each returns None when fine, else an ``Error``.

Decisions where the real endpoint's behaviour is not documented: an invalid database or table
name gets 404 (no such destination can exist); a wrong ``Content-Type`` gets 415.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

NAME = re.compile(r"^[a-z0-9_]{3,255}$")
CONTENT_TYPES = ("application/vnd.treasuredata.v1+json", "application/json")
MAX_EVENTS = 500
MAX_EVENT_BYTES = 1_000_000
MAX_BODY_BYTES = 5_000_000


@dataclass(frozen=True, slots=True)
class Error:
    status: int
    code: int | None
    message: str


def check_destination(database: str, table: str, rejected: Sequence[str]) -> Error | None:
    if not NAME.match(database) or not NAME.match(table):
        return Error(404, None, "database and table names are 3-255 characters of a-z, 0-9, _")
    if f"{database}.{table}" in rejected:
        return Error(404, None, f"unknown database or table {database}.{table}")
    return None


def account_of(credential: str) -> str:
    return credential.split("/", 1)[0]


def check_auth(
    headers: Mapping[str, str], profile: str, api_key: str, tokens: Sequence[str]
) -> Error | None:
    if headers.get("Authorization", "") != f"TD1 {api_key}":
        return Error(401, None, "missing or invalid API key")
    if profile != "realtime":
        return None
    token = headers.get("WP13n-Token")
    if not token:
        return Error(400, 3000, "token not provided")
    parts = token.split("/")
    if len(parts) != 3 or not all(parts):
        return Error(400, 3003, "token in an invalid format (account/instance/token)")
    if token not in tokens:
        return Error(400, 3001, "token not in the configuration")
    if account_of(token) != account_of(api_key):
        return Error(400, 3002, "token account conflicts with the API key's account")
    return None


def check_content_type(value: str) -> Error | None:
    if value.split(";", 1)[0].strip().lower() not in CONTENT_TYPES:
        return Error(415, None, f"Content-Type must be {CONTENT_TYPES[0]}")
    return None


def parse_body(body: bytes) -> list[dict[str, Any]] | Error:
    """The events of a request body, or the error the endpoint answers."""
    if len(body) > MAX_BODY_BYTES:
        return Error(413, None, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Error(400, 3004, "body is not JSON")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        return Error(400, 3004, "body must be an object with a non-empty events array")
    if len(events) > MAX_EVENTS:
        return Error(400, 3004, f"at most {MAX_EVENTS} events per request")
    for event in events:
        if not isinstance(event, dict):
            return Error(400, 3004, "every event must be an object")
    # An event can only exceed 1 MB inside a body that does: skip the re-encoding otherwise.
    if len(body) > MAX_EVENT_BYTES:
        for event in events:
            if len(orjson.dumps(event)) > MAX_EVENT_BYTES:
                return Error(413, None, f"an event is over {MAX_EVENT_BYTES} bytes")
    return events


def matches(events: Sequence[dict[str, Any]], rule: Mapping[str, Any] | None) -> bool:
    if not rule:
        return False
    key, value = rule.get("field"), rule.get("value")
    return any(event.get(key) == value for event in events)  # type: ignore[arg-type]


def error_body(error: Error, shape: str) -> bytes:
    if error.code is None:
        return orjson.dumps({"error": {"message": error.message}})
    if shape == "code":
        return orjson.dumps({"code": error.code, "message": error.message})
    if shape == "error_code":
        return orjson.dumps({"error_code": str(error.code), "message": error.message})
    if shape == "errors[0].code":
        return orjson.dumps({"errors": [{"code": error.code, "message": error.message}]})
    return orjson.dumps({"error": {"code": error.code, "message": error.message}})
