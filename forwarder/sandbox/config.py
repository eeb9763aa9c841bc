"""The sandbox's settings: fixed ones at start, and the faults, changeable at run time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

DEV_API_KEY = "1/sandbox-key-0123456789abcdef"
DEV_TOKEN = "1/1/sandbox-token"
ERROR_SHAPES = ("error.code", "code", "error_code", "errors[0].code")


@dataclass(frozen=True)
class ErrorRule:
    """Answer ``status`` (with ``code`` in the body when given) to a ``rate`` of requests."""

    status: int
    code: int | None = None
    rate: float = 1.0
    retry_after_s: int | None = None

    @classmethod
    def parse(cls, text: str) -> ErrorRule:
        """``STATUS[:CODE]=RATE``, e.g. ``500:1003=0.1`` or ``503=0.05``."""
        spec, _, rate = text.partition("=")
        status, _, code = spec.partition(":")
        return cls(int(status), int(code) if code else None, float(rate or 1.0))


@dataclass
class Faults:
    errors: list[ErrorRule] = field(default_factory=list)
    latency_ms: float = 0.0
    hang_rate: float = 0.0
    reset_rate: float = 0.0
    receipts_fail_rate: float = 0.0
    receipts_code: int = 3004
    # Reject with 400 code 3004 every batch holding an event whose ``field`` equals ``value``.
    reject_match: dict[str, Any] | None = None
    reject_destinations: list[str] = field(default_factory=list)
    error_shape: str = "error.code"
    # When not empty, errors, hangs and resets hit only requests to these "database.table"s.
    fault_destinations: list[str] = field(default_factory=list)
    # Answer 500 with ``fail_match_code`` to every batch holding an event whose ``field``
    # equals ``value``: a backend failing on one event, whatever the rest of the batch.
    fail_match: dict[str, Any] | None = None
    fail_match_code: int = 2012
    # Capacity model (0: unlimited): at most ``capacity`` requests served at once, each taking
    # ``service_ms`` alone and up to twice that when all ``capacity`` are busy; one more is
    # answered 429 with code 2013 at once (with ``Retry-After`` when ``capacity_retry_after_s``).
    capacity: int = 0
    service_ms: float = 0.0
    capacity_retry_after_s: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial update from the control API; raises ValueError on a bad field."""
        known = {f.name for f in fields(self)}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            if key == "errors":
                value = [
                    ErrorRule(**rule) if isinstance(rule, dict) else ErrorRule.parse(rule)
                    for rule in value
                ]
            if key in ("capacity", "service_ms") and (
                not isinstance(value, int | float) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{key} must be a number, 0 or more")
            if key == "error_shape" and value not in ERROR_SHAPES:
                raise ValueError(f"error_shape must be one of {ERROR_SHAPES}")
            setattr(self, key, value)


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    profile: Literal["realtime", "ingest"] = "realtime"
    api_key: str = DEV_API_KEY
    tokens: tuple[str, ...] = (DEV_TOKEN,)
    rate: float = 100.0
    burst: int = 200
    seed: int | None = None
    faults: Faults = field(default_factory=Faults)
    # Serve HTTPS with this PEM certificate (chain) and key; empty: plain HTTP.
    tls_cert: str = ""
    tls_key: str = ""
    # The personalization service's limit (seed 004): 100/s, bursts of 200/s for 10 s; 0: none.
    p13n_rate: float = 100.0
    p13n_burst_rate: float = 200.0
    p13n_burst_seconds: float = 10.0
