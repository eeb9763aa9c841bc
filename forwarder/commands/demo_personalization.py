"""The demo's personalization part: its service config, a few injected 503s, and its summary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from forwarder.sandbox import RunningSandbox

Total = Callable[..., float]  # demo.total: a counter's sum over matching labels
SERVICE = "product_recommendations"
TOPIC = f"clickstream.personalization.{SERVICE}"


def personalization_toml(url: str) -> str:
    return f"""
[[personalization.services]]
name = "{SERVICE}"
parent_segment_id = "394649"
url = "{url}"
triggers = ["product_view", "add_to_cart"]
cache_ttl_s = 60
max_age_s = 5
fallback_outputs = {{ recommended_products = ["bestseller_1", "bestseller_2"] }}
"""


async def inject_personalization_faults(sandbox: RunningSandbox) -> None:
    """1 % of personalization calls answer 503, so retries and a few fallbacks show."""
    sandbox.sandbox.personalization.faults.update({"errors": ["503=0.01"]})


async def drain(registry: CollectorRegistry, total: Total, timeout_s: float = 15.0) -> None:
    """Wait (bounded) until no trigger is pending: answers lag ingestion by the rate limit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if total(registry, "forwarder_personalization_queue_triggers") == 0:
            await asyncio.sleep(0.5)  # the last requests in flight
            return
        await asyncio.sleep(0.25)


async def personalization_summary(
    bootstrap_servers: str, registry: CollectorRegistry, total: Total
) -> list[str]:
    published = total(registry, "forwarder_personalization_records_published_total")
    hits = total(registry, "forwarder_personalization_cache_lookups_total", result="hit")
    misses = total(registry, "forwarder_personalization_cache_lookups_total", result="miss")
    fallbacks = total(registry, "forwarder_personalization_fallbacks_total")
    dropped = total(registry, "forwarder_personalization_triggers_dropped_total")
    ratio = hits / (hits + misses) if hits + misses else 0.0
    lines = [
        f"personalization: {published:,.0f} answers published to {TOPIC}, cache hit ratio "
        f"{ratio:.0%}, {fallbacks:,.0f} fallbacks, {dropped:,.0f} triggers dropped "
        "(latest-wins, queue full or stale)"
    ]
    for answer in await _examples(bootstrap_servers):
        lines.append(f"  example: {orjson.dumps(answer).decode()}")
    return lines


async def _examples(bootstrap_servers: str, count: int = 2) -> list[dict[str, object]]:
    """Answers of different sections, from the start of the output topic."""
    # No group: subscribing assigns every partition; "earliest" reads from the start.
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        chosen: dict[str, dict[str, object]] = {}
        for batch in (await consumer.getmany(timeout_ms=2000, max_records=2000)).values():
            for record in batch:
                answer = orjson.loads(record.value)
                chosen.setdefault(answer["section"], answer)
        return list(chosen.values())[:count]
    finally:
        await consumer.stop()
