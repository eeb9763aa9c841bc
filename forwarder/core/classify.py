"""Classification: one pure, total function from a request's outcome to what to do next.

The outcome is a ``SendResult`` (a transport error, or an HTTP status with its body and
``Retry-After``); the answer is a ``Decision``. A ``Policy`` maps ``"status:code"`` or
``"status"`` to an action; its defaults are design.md's error-code table, and the
configuration's ``[policy]`` section overrides any row.

The endpoint's numeric code is read from the JSON error body. Its field name is not
documented, so ``code``, ``error_code``, ``error.code`` and ``errors[0].code`` (number or
numeric string) are all accepted; with none, or a body that is not JSON, the status decides.

A 200 or 206 carrying ``receipts`` is answered event by event (``Action.PARTIAL`` with one
``Decision`` per event). A list that is not exactly one receipt per event cannot say which
events arrived, so every event of the request fails and takes the retry path: never an ack. A
failed receipt carrying an endpoint code is routed by the policy for that code (a 3004 is
dead-lettered as ``rejected`` at once, a token code pauses), one without a code is retried.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    ISOLATE = "isolate"  # split until the bad events are alone, dead-letter those
    SPLIT = "split"  # request too large: halve and resend
    DEAD_LETTER = "dead-letter"
    PAUSE = "pause"  # systemic fault: stop consuming and probe
    PARTIAL = "partial"  # per-event receipts: ack the successes, retry the failures


OTHER_CODE = "other"  # the metric label of a code outside the error table and the policy

CONFIGURABLE = {Action.RETRY, Action.ISOLATE, Action.SPLIT, Action.DEAD_LETTER, Action.PAUSE}


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one HTTP request came to, as a value: the HTTP sink never raises."""

    status: int | None = None
    body: bytes = b""
    retry_after_s: float | None = None
    transport_error: str | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    status: int | None = None
    code: int | None = None
    detail: str = ""
    retry_after_s: float | None = None
    # For PARTIAL: one decision per event of the request, in order (ACK when it was accepted).
    receipts: tuple[Decision, ...] = ()

    @property
    def accepted(self) -> tuple[bool, ...]:
        """For PARTIAL: one flag per event, True when the endpoint accepted it."""
        return tuple(receipt.action is Action.ACK for receipt in self.receipts)


CODE_MEANINGS: dict[int, str] = {
    1001: "a backend was unreachable",
    1002: "a backend timed out",
    1003: "a backend failed",
    1004: "a backend failed",
    1005: "a backend failed",
    2001: "stream not found",
    2002: "stream backend failed",
    2003: "throttled: stream limit",
    2011: "function not found",
    2012: "function backend failed",
    2013: "throttled: function concurrency",
    2014: "function failed",
    2015: "function timed out",
    2021: "backend failed",
    3000: "token not provided",
    3001: "token not in the configuration",
    3002: "token account conflicts with the API key's account",
    3003: "token in an invalid format",
    3004: "invalid event object",
    3010: "token configured with an inconsistent reactor",
    9999: "unknown backend error",
}

# The HTTP status each code of design.md's table comes with: a receipt may carry a code alone.
CODE_STATUS: dict[int, int] = {
    **dict.fromkeys((3000, 3001, 3002, 3003, 3004, 3010), 400),
    **dict.fromkeys((2003, 2013), 429),
    **dict.fromkeys((1001, 1002, 1003, 1004, 1005, 2001, 2002, 2011, 2012, 2014), 500),
    **dict.fromkeys((2015, 2021, 9999), 500),
}

_DEFAULTS: dict[str, Action] = {
    "400:3000": Action.PAUSE,
    "400:3001": Action.PAUSE,
    "400:3002": Action.PAUSE,
    "400:3003": Action.PAUSE,
    "400:3004": Action.ISOLATE,
    "400:3010": Action.PAUSE,
    "401": Action.PAUSE,
    "403": Action.PAUSE,
    "404": Action.DEAD_LETTER,
    "413": Action.SPLIT,
    "429": Action.RETRY,
    # Stream or function not found: one destination's configuration, not every event's. Its
    # events are dead-lettered for a `dlq replay` once it is fixed, as after a 404.
    "500:2001": Action.DEAD_LETTER,
    "500:2011": Action.DEAD_LETTER,
    "500": Action.RETRY,
    "502": Action.RETRY,
    "503": Action.RETRY,
    "504": Action.RETRY,
    "transport": Action.RETRY,
}


@dataclass(frozen=True)
class Policy:
    """Actions by ``"status:code"``, then ``"status"``, then the class of the status."""

    rules: Mapping[str, Action] = field(default_factory=lambda: dict(_DEFAULTS))

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Action]) -> Policy:
        return cls({**_DEFAULTS, **overrides})

    @classmethod
    def from_config(cls, overrides: Mapping[str, str]) -> Policy:
        """From the config's ``[policy]`` table: ``"400:3004" = "isolate"`` and so on."""
        return cls.with_overrides({key: Action(value) for key, value in overrides.items()})

    @functools.cached_property
    def known_codes(self) -> frozenset[int]:
        """Endpoint codes that may be metric labels: the error table's and those named here."""
        named = {_as_code(key.partition(":")[2]) for key in self.rules if ":" in key}
        return frozenset(CODE_MEANINGS) | {code for code in named if code is not None}

    def code_label(self, code: int | None) -> str:
        """A metric label for an endpoint code: bounded, since codes come from response bodies."""
        if code is None:
            return ""
        return str(code) if code in self.known_codes else OTHER_CODE

    def action_for(self, status: int | None, code: int | None) -> Action:
        if status is None:
            return self.rules.get("transport", Action.RETRY)
        if code is not None:
            action = self.rules.get(f"{status}:{code}")
            if action is not None:
                return action
        action = self.rules.get(str(status))
        if action is not None:
            return action
        if status >= 500:
            return Action.RETRY
        if status == 408:
            return Action.RETRY
        return Action.DEAD_LETTER


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    """A response body's JSON object, or None when it is empty, not JSON or not an object."""
    if not body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def error_code(body: bytes) -> int | None:
    """The endpoint's numeric code in an error body, whatever documented shape it takes."""
    data = _json_object(body)
    return None if data is None else _code_in(data)


def _code_in(data: Mapping[str, Any]) -> int | None:
    for key in ("code", "error_code"):
        code = _as_code(data.get(key))
        if code is not None:
            return code
    error = data.get("error")
    if isinstance(error, dict):
        code = _as_code(error.get("code"))
        if code is not None:
            return code
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return _as_code(errors[0].get("code"))
    return None


def receipts(body: bytes, count: int, status: int, policy: Policy) -> tuple[Decision, ...] | None:
    """Per-event decisions from a body with ``receipts``; None when it has no such member.

    A ``receipts`` member that is not a list of exactly ``count`` receipts fails every event
    (retry path): it cannot say which events arrived.
    """
    data = _json_object(body)
    if data is None or "receipts" not in data:
        return None
    items = data["receipts"]
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else type(items).__name__
        failed = Decision(
            Action.RETRY, status, detail=f"receipts for {count} events, got {got}: unusable"
        )
        return (failed,) * count
    return tuple(_receipt(item, status, policy) for item in items)


_ACCEPTED_RECEIPTS: dict[int, Decision] = {}


def _receipt(item: Any, status: int, policy: Policy) -> Decision:
    if isinstance(item, dict) and item.get("success") is True:
        accepted = _ACCEPTED_RECEIPTS.get(status)
        if accepted is None:
            accepted = _ACCEPTED_RECEIPTS[status] = Decision(Action.ACK, status)
        return accepted
    code = _code_in(item) if isinstance(item, dict) else None
    own_status = _as_code(item.get("status")) if isinstance(item, dict) else None
    if own_status is None and code is not None:
        own_status = CODE_STATUS.get(code)
    if own_status is None or 200 <= own_status < 300:
        # No code the error table knows: a failed receipt follows the retry path.
        return Decision(
            Action.RETRY, status, code, detail="receipt: " + describe(status, code) + " failed"
        )
    return Decision(
        policy.action_for(own_status, code),
        own_status,
        code,
        detail="receipt: " + describe(own_status, code),
    )


def describe(status: int | None, code: int | None) -> str:
    if status is None:
        return "transport error"
    meaning = CODE_MEANINGS.get(code, "") if code is not None else ""
    text = f"HTTP {status}" + (f" code {code}" if code is not None else "")
    return f"{text}: {meaning}" if meaning else text


def classify(result: SendResult, policy: Policy, event_count: int) -> Decision:
    """Decide what a request's outcome means for its events. Total: never raises."""
    if result.status is None:
        return Decision(
            policy.action_for(None, None),
            detail=f"transport error: {result.transport_error or 'unknown'}",
        )
    status = result.status
    if status in (200, 206):
        decisions = receipts(result.body, event_count, status, policy)
        if decisions is None and status == 206:
            # A partial answer we cannot read: every event failed, safely retried.
            failed = Decision(Action.RETRY, status, detail="206 without readable receipts")
            decisions = (failed,) * event_count
        if decisions is not None:
            if all(d.action is Action.ACK for d in decisions):
                return Decision(Action.ACK, status)
            return Decision(
                Action.PARTIAL,
                status,
                receipts=decisions,
                detail="some events were not accepted",
            )
    if 200 <= status < 300:
        return Decision(Action.ACK, status)
    code = error_code(result.body)
    return Decision(
        policy.action_for(status, code),
        status,
        code,
        detail=describe(status, code),
        retry_after_s=result.retry_after_s,
    )


def about_endpoint(decision: Decision) -> Decision:
    """The decision that says how the endpoint is.

    Per-event receipts are answers about events, so the endpoint works, unless a receipt
    carries a pause code (a bad token), which every event would get.
    """
    if decision.action is Action.PARTIAL:
        return next((r for r in decision.receipts if r.action is Action.PAUSE), decision)
    return decision


def unreachable(result: SendResult) -> bool:
    """A connection the host refused or could not be opened (not a timeout): the host itself
    is unreachable, whichever batch asked."""
    error = result.transport_error or ""
    return error.startswith(("ConnectError", "ClientConnectorError", "ConnectionRefused")) and (
        "Timeout" not in error
    )


def status_label(value: int | None) -> str:
    """A status (or none, for a transport error) as a metric label."""
    return "" if value is None else str(value)


T = TypeVar("T")


@dataclass(slots=True)
class ReceiptGroups(Generic[T]):
    """The events of a request answered event by event, grouped by what their receipts ask."""

    accepted: list[T] = field(default_factory=list)
    held: list[T] = field(default_factory=list)  # a pause code: wait for the endpoint
    retried: list[T] = field(default_factory=list)
    # Refused as they are (isolate, dead-letter, split), by receipt: one dead-letter reason each.
    refused: dict[Decision, list[T]] = field(default_factory=dict)
    retry_decision: Decision | None = None  # the first retried receipt's: the retries follow it


def group_by_receipt(events: Sequence[T], decision: Decision) -> ReceiptGroups[T]:
    """Pair each event with its receipt (one each, in order) and group them by action."""
    groups: ReceiptGroups[T] = ReceiptGroups()
    for event, receipt in zip(events, decision.receipts, strict=True):
        if receipt.action is Action.ACK:
            groups.accepted.append(event)
        elif receipt.action is Action.PAUSE:
            groups.held.append(event)
        elif receipt.action is Action.RETRY:
            if groups.retry_decision is None:
                groups.retry_decision = receipt
            groups.retried.append(event)
        else:
            groups.refused.setdefault(receipt, []).append(event)
    return groups
