"""Fault decisions for one request, pure given a random source: what goes wrong, if anything."""

from __future__ import annotations

import random
from dataclasses import dataclass

from forwarder.sandbox.config import ErrorRule, Faults


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "hang", "reset" or "error"
    rule: ErrorRule | None = None


def decide(faults: Faults, rng: random.Random) -> Fault | None:
    """Draw this request's fault. Each kind draws independently, in a fixed order."""
    if faults.hang_rate and rng.random() < faults.hang_rate:
        return Fault("hang")
    if faults.reset_rate and rng.random() < faults.reset_rate:
        return Fault("reset")
    for rule in faults.errors:
        if rule.rate and rng.random() < rule.rate:
            return Fault("error", rule)
    return None


def service_s(faults: Faults, busy: int) -> float:
    """The capacity model's service time with ``busy`` requests served (this one included):
    ``service_ms`` alone, growing linearly to twice that when every slot is busy."""
    if not faults.capacity:
        return faults.service_ms / 1000
    return faults.service_ms / 1000 * (1 + (busy - 1) / faults.capacity)


def receipt_failures(count: int, rate: float, rng: random.Random) -> list[bool]:
    """Which events of a batch fail in a 206 answer (True: failed), each with chance ``rate``."""
    return [rng.random() < rate for _ in range(count)]
