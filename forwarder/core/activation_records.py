"""Personalization activation as data (pure): triggers in, answers parsed, output records out.

The output record (design.md section 7), keyed by the user id::

    {"user_id", "section", "outputs", "source": "service"|"cache"|"fallback",
     "trigger": {"event_id", "uuid", "event_type", "time"}, "requested_at", "latency_ms",
     "error": null | {"status", "code", "message"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from forwarder.core.latest_wins import Trigger

FALLBACK_SECTION = "fallback"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Answer:
    """A service's 200 answer, as much of it as the output record carries."""

    section: str
    outputs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """Why there is no answer: an HTTP status (None for transport), a code and a message."""

    status: int | None
    code: str | None
    message: str


def trigger_of(
    event: Mapping[str, Any],
    user_field: str,
    context: Mapping[str, str],
    uuid: str,
    accepted_at: float,
    seq: int = 0,
) -> Trigger | None:
    """The trigger an accepted event makes; None when it carries no usable user id.

    ``seq``: its place in the order the events were accepted (``Trigger.seq``)."""
    user = event.get(user_field)
    if type(user) is not str:
        if not isinstance(user, int) or isinstance(user, bool):
            return None
        user = str(user)
    elif not user:
        return None
    fields = tuple(
        (request_field, value)
        for request_field, event_field in context.items()
        if (value := event.get(event_field)) is not None
    )
    event_id = event.get("event_id")
    when = event.get("time")
    return Trigger(
        user,
        fields,
        str(event.get("event_type", "")),
        event_id if type(event_id) is str else None,
        uuid,
        when if type(when) is int else None,
        accepted_at,
        seq,
    )


def request_body(trigger: Trigger) -> dict[str, Any]:
    """The seed's flat body: ``{"user_id": ..., <context fields>}``."""
    body: dict[str, Any] = dict(trigger.context)
    body["user_id"] = trigger.user_id
    return body


def parse_answer(body: bytes) -> Answer | CallError:
    """A 200 body as an ``Answer``, or the error that it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return CallError(200, "bad_answer", "the answer is not JSON")
    if not isinstance(data, dict):
        return CallError(200, "bad_answer", "the answer is not a JSON object")
    section, outputs = data.get("section"), data.get("outputs")
    if not isinstance(section, str) or not isinstance(outputs, dict):
        return CallError(200, "bad_answer", "the answer lacks section or outputs")
    return Answer(section, outputs)


def error_of(status: int, body: bytes) -> CallError:
    """An error answer: its status and, when the body says, its code and message (truncated)."""
    code: str | None = None
    message = f"HTTP {status}"
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        nested = data.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else data
        raw_code = inner.get("code")
        if isinstance(raw_code, str | int) and not isinstance(raw_code, bool):
            code = str(raw_code)[:64]
        raw_message = inner.get("message")
        if isinstance(raw_message, str) and raw_message:
            message = raw_message[:200]
    return CallError(status, code, message)


def _iso(epoch_s: float) -> str:
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def output_record(
    trigger: Trigger,
    answer: Answer | None,
    source: str,
    requested_at: float,
    latency_ms: float,
    error: CallError | None = None,
    fallback_outputs: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON value published for ``trigger``; ``answer`` None means the fallback."""
    if answer is None:
        section, outputs = FALLBACK_SECTION, dict(fallback_outputs or {})
    else:
        section, outputs = answer.section, dict(answer.outputs)
    record = {
        "user_id": trigger.user_id,
        "section": section,
        "outputs": outputs,
        "source": source,
        "trigger": {
            "event_id": trigger.event_id,
            "uuid": trigger.uuid,
            "event_type": trigger.event_type,
            "time": trigger.time,
        },
        "requested_at": _iso(requested_at),
        "latency_ms": round(latency_ms, 1),
        "error": None
        if error is None
        else {"status": error.status, "code": error.code, "message": error.message},
    }
    return orjson.dumps(record)


class BoundedLabels:
    """Label values as seen, up to ``cap`` distinct ones; later newcomers become ``other``.

    Section names come from the service, so their set is not ours to bound: the first ``cap``
    keep their name in metrics.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()

    def label(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.cap:
            self._seen.add(value)
            return value
        return OTHER
