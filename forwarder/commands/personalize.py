"""``forwarder personalize``: one call to a configured personalization service, printed.

The exit code says how it went: 0 for an answer, 1 for an error answer or no answer (with the
seed's advice for each error class), 2 for a bad configuration or option (``ConfigError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from forwarder.adapters.personalization_client import CallResult, PersonalizationClient
from forwarder.config import Config, PersonalizationService
from forwarder.core.activation_records import error_of
from forwarder.errors import ConfigError

ADVICE = {
    401: "the API key was refused: check TD_PERSONALIZATION_API_KEY (or TD_API_KEY) and its CDP access",
    404: "service not found: check the service name and parent_segment_id",
    429: "rate limit exceeded: retry later, with backoff",
    500: "server error: retry with backoff",
    503: "service unavailable: check the real-time configuration status",
}


@dataclass(frozen=True)
class Report:
    exit_code: int
    output: str  # for standard output
    error: str = ""  # for standard error


def service_named(config: Config, name: str) -> PersonalizationService:
    for service in config.personalization.services:
        if service.name == name:
            return service
    known = ", ".join(s.name for s in config.personalization.services) or "none configured"
    raise ConfigError("--service", f"no personalization service named {name!r}", f"known: {known}")


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--context", f"{pair!r} is not key=value", "e.g. page_url=/products")
        context[key] = value
    return context


def personalize(
    config: Config,
    service_name: str,
    user_id: str,
    context: Sequence[str] = (),
    *,
    test: bool = False,
    as_json: bool = False,
) -> Report:
    service = service_named(config, service_name)
    if not config.personalization.api_key:
        raise ConfigError(
            "TD_PERSONALIZATION_API_KEY",
            "no API key for the personalization service",
            "set TD_API_KEY, or TD_PERSONALIZATION_API_KEY(_FILE)",
        )
    fields = parse_context(context)
    body: dict[str, Any] = (
        {"user_id": user_id, "input_params": fields} if test else {**fields, "user_id": user_id}
    )
    result = asyncio.run(_call(service, config, body, test))
    return report(result, as_json)


async def _call(
    service: PersonalizationService, config: Config, body: dict[str, Any], test: bool
) -> CallResult:
    client = PersonalizationClient(service, config.personalization.api_key)
    try:
        return await client.call(body, test=test)
    finally:
        await client.aclose()


def report(result: CallResult, as_json: bool) -> Report:
    latency_ms = round(result.elapsed_s * 1000, 1)
    if result.status is None:
        return Report(1, "", f"no answer: {result.transport_error} after {latency_ms} ms")
    if result.status != 200:
        error = error_of(result.status, result.body)
        advice = ADVICE.get(result.status) or ADVICE.get(500 if result.status >= 500 else 0, "")
        wait = f" (Retry-After: {result.retry_after_s:g} s)" if result.retry_after_s else ""
        return Report(1, "", f"HTTP {result.status}{wait}: {error.message}; {advice}".rstrip("; "))
    try:
        answer = orjson.loads(result.body)
    except orjson.JSONDecodeError:
        return Report(1, "", "the answer is not JSON")
    if not isinstance(answer, dict):
        return Report(1, "", "the answer is not a JSON object")
    if as_json:
        return Report(0, orjson.dumps({**answer, "latency_ms": latency_ms}).decode())
    return Report(0, table(answer, latency_ms))


def table(answer: dict[str, Any], latency_ms: float) -> str:
    rows: list[tuple[str, str]] = []
    for key in ("user_id", "section"):
        rows.append((key, _text(answer.get(key))))
    outputs = answer.get("outputs")
    for key, value in outputs.items() if isinstance(outputs, dict) else ():
        rows.append((f"outputs.{key}", _text(value)))
    for key in ("timestamp", "processing_time_ms"):
        if key in answer:
            rows.append((key, _text(answer[key])))
    rows.append(("latency_ms", _text(latency_ms)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "(none)"
    if value is None:
        return "-"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)
