"""Realistic clickstream traffic, with bad events of every kind, for the demo, tests and benchmarks.

``TrafficGenerator`` is pure and seeded: the same seed gives the same events, so a test can
know in advance which events are bad and why. ``produce`` writes them to Kafka.

Given ``schema_ids`` (event type -> registry id, from ``register_schemas``), it writes events
framed as a registry-aware producer does (``forwarder.core.framing``), a tenth of the valid
ones left bare, and adds a bad kind of its own: ``unknown_schema`` (an id no registry has).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from forwarder.core.framing import frame
from forwarder.core.schemas import default_schema_dir

EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "search",
    "identify",
)
# Rough shape of a storefront's traffic: mostly page and product views.
WEIGHTS = (45, 25, 10, 3, 4, 10, 3)
USERS = 100_000
BAD_KINDS = ("invalid_json", "not_an_object", "schema_violation", "unknown_event_type", "too_large")
FRAMED_BAD_KINDS = (*BAD_KINDS, "unknown_schema")
# A schema id no registry of the demo or the tests holds.
UNKNOWN_SCHEMA_ID = 999_999_999
# Of the valid events of framed traffic, the share left bare: both kinds share the topic.
BARE_SHARE = 0.1
DEVICES = ("desktop", "mobile", "tablet")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1",
)
QUERIES = (
    "running shoes",
    "rain jacket",
    "usb-c cable",
    "espresso machine",
    "desk lamp",
    "yoga mat",
)


@dataclass(frozen=True, slots=True)
class Generated:
    key: bytes
    value: bytes
    bad: str | None  # the dead-letter reason this event must get, or None when valid
    event_id: str | None


def _event_type_of(value: bytes) -> str:
    """The event type of a bad event, for its schema id; page_view when it cannot be read."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "page_view"
    kind = event.get("event_type") if isinstance(event, dict) else None
    return kind if kind in EVENT_TYPES else "page_view"


class TrafficGenerator:
    def __init__(
        self,
        seed: int = 0,
        bad_ratio: float = 0.0,
        run_id: str = "run",
        hot_users: float = 0.0,
        schema_ids: Mapping[str, int] | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self.schema_ids = dict(schema_ids or {})
        self.bad_ratio = bad_ratio
        # hot_users > 0: that share of the users (the lowest ids) makes half of the events, as
        # a storefront's regulars do; 0 draws every user alike (and no extra random numbers).
        self.hot_users = hot_users
        self.run_id = run_id
        self._count = 0
        self.produced = 0

    def _common(self, event_type: str, user: int, now: float) -> dict[str, Any]:
        rng = self._rng
        self._count += 1
        stamp = (
            datetime.fromtimestamp(now, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        return {
            "event_id": f"{self.run_id}-{self._count}",
            "event_type": event_type,
            "user_id": f"user-{user}",
            "td_client_id": f"{user:08x}-{user * 7 % 65536:04x}-4a1b-9c2d-{user * 13:012x}"[:36],
            "timestamp": stamp,
            "page_url": f"https://shop.example.com/{event_type.replace('_', '-')}/{rng.randrange(1, 5000)}",
            "referrer": rng.choice(("https://www.google.com/", "https://shop.example.com/", "")),
            "user_agent": rng.choice(AGENTS),
            "device_type": rng.choice(DEVICES),
            "session_id": f"s-{user}-{int(now) // 1800}",
        }

    def valid(self, now: float | None = None) -> dict[str, Any]:
        rng = self._rng
        now = time.time() if now is None else now
        event_type = rng.choices(EVENT_TYPES, WEIGHTS)[0]
        event = self._common(event_type, self._user(), now)
        product = f"sku-{rng.randrange(1, 20_000):05d}"
        price = round(rng.uniform(2, 400), 2)
        if event_type in ("product_view", "add_to_cart", "remove_from_cart"):
            event.update(product_id=product, price=price, currency="USD")
            if event_type != "product_view":
                event["quantity"] = rng.randrange(1, 4)
        elif event_type == "purchase":
            items: list[dict[str, Any]] = [
                {
                    "product_id": f"sku-{rng.randrange(1, 20_000):05d}",
                    "price": round(rng.uniform(2, 200), 2),
                    "quantity": rng.randrange(1, 3),
                }
                for _ in range(rng.randrange(1, 4))
            ]
            total = round(sum(i["price"] * i["quantity"] for i in items), 2)
            event.update(order_id=f"o-{self._count}", items=items, total=total, currency="USD")
        elif event_type == "search":
            event.update(query=rng.choice(QUERIES), results_count=rng.randrange(0, 200))
        elif event_type == "identify":
            event.update(
                traits={
                    "plan": rng.choice(("free", "plus")),
                    "country": rng.choice(("US", "JP", "FR")),
                }
            )
        else:
            event["title"] = "Shop"
        return event

    def _user(self) -> int:
        if self.hot_users and self._rng.random() < 0.5:
            return self._rng.randrange(1, max(2, int(USERS * self.hot_users)))
        return self._rng.randrange(1, USERS)

    def bad(self, kind: str, now: float | None = None) -> bytes:
        event = self.valid(now)
        if kind == "invalid_json":
            return orjson.dumps(event)[:-7]
        if kind == "not_an_object":
            return orjson.dumps([event["event_id"], event["event_type"]])
        if kind == "schema_violation":
            event["timestamp"] = "yesterday"
            return orjson.dumps(event)
        if kind == "unknown_event_type":
            event["event_type"] = "page_vieww"
            return orjson.dumps(event)
        if kind == "too_large":
            event["blob"] = "x" * 1_000_001
            return orjson.dumps(event)
        if kind == "unknown_schema":
            return frame(UNKNOWN_SCHEMA_ID, orjson.dumps(event))
        raise ValueError(f"unknown bad kind {kind!r}")

    def _framed(self, kind: str | None, event_type: str, value: bytes) -> bytes:
        """``value`` as framed traffic carries it: framed by its event type's schema id, but
        for a tenth of the valid events and the kinds that a writer schema cannot tell."""
        if not self.schema_ids or kind in ("unknown_event_type", "unknown_schema"):
            return value
        if kind is None and self._rng.random() < BARE_SHARE:
            return value
        return frame(self.schema_ids[event_type], value)

    def next(self, now: float | None = None) -> Generated:
        self.produced += 1
        if self.bad_ratio and self._rng.random() < self.bad_ratio:
            # Over-1 MB events are rare in real traffic, and heavy on the broker: 1 in 50 bad ones.
            kinds = FRAMED_BAD_KINDS if self.schema_ids else BAD_KINDS
            kind = self._rng.choices(kinds, (12, 12, 12, 12, 1, 12)[: len(kinds)])[0]
            value = self.bad(kind, now)
            value = self._framed(kind, _event_type_of(value), value) if self.schema_ids else value
            return Generated(f"user-{self._count}".encode(), value, kind, None)
        event = self.valid(now)
        value = self._framed(None, event["event_type"], orjson.dumps(event))
        return Generated(event["user_id"].encode(), value, None, event["event_id"])

    def take(self, count: int) -> Iterator[Generated]:
        for _ in range(count):
            yield self.next()


def _producer(bootstrap_servers: str) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=20,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )


async def _send_paced(
    producer: Any,
    topic: str,
    items: Iterable[Generated],
    rate: float | None,
    sent: list[Generated] | None,
) -> int:
    """Send ``items`` (at ``rate`` per second when given), appending each to ``sent`` if given."""
    started = time.monotonic()
    pending = []
    count = 0
    for index, item in enumerate(items):
        if rate:
            ahead = started + index / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        pending.append(await producer.send(topic, value=item.value, key=item.key))
        count += 1
        if sent is not None:
            sent.append(item)
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count


async def produce(
    bootstrap_servers: str,
    topic: str,
    generator: TrafficGenerator,
    count: int,
    rate: float | None = None,
) -> list[Generated]:
    """Produce ``count`` events (at ``rate`` per second when given); return what was sent."""
    producer = _producer(bootstrap_servers)
    await producer.start()
    sent: list[Generated] = []
    try:
        await _send_paced(producer, topic, generator.take(count), rate, sent)
    finally:
        await producer.stop()
    return sent


async def produce_forever(
    bootstrap_servers: str, topic: str, generator: TrafficGenerator, rate: float, count: int = 0
) -> int:
    """Produce at ``rate`` events/s until ``count`` (0: until cancelled), keeping nothing."""
    producer = _producer(bootstrap_servers)
    await producer.start()
    # count 0: an endless stream (generator.next never returns the sentinel None).
    items = generator.take(count) if count else iter(generator.next, None)
    try:
        return await _send_paced(producer, topic, items, rate, None)
    finally:
        await producer.stop()


async def register_schemas(registry_url: str, topic: str) -> dict[str, int]:
    """Register the bundled schemas in a registry: ``<topic>-common`` (common.json), then each
    event type's as ``<topic>-<event type>`` referencing it by the name its ``$ref`` uses.
    Their ids by event type."""
    from forwarder.adapters.registry_client import RegistryClient
    from forwarder.config import RegistryConfig

    directory = default_schema_dir()
    client = RegistryClient(RegistryConfig(url=registry_url))
    try:
        common = f"{topic}-common"
        _, version = await client.register(common, (directory / "common.json").read_text())
        ids = {}
        for event_type in EVENT_TYPES:
            text = (directory / f"{event_type}.json").read_text()
            references = [("common.json", common, version)]
            ids[event_type], _ = await client.register(f"{topic}-{event_type}", text, references)
        return ids
    finally:
        await client.aclose()
