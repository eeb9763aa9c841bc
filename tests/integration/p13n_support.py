"""Helpers of the personalization integration tests: events, configs, output records, sandbox."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from forwarder.config import Config, load_config
from forwarder.engine.pipeline import Pipeline

from .support import env_for, read_all

SERVICE = "recs"
SEGMENT = "394649"
_ids = itertools.count()


def event(kind: str, user: str, **fields: Any) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    base: dict[str, Any] = {
        "event_id": f"p-{next(_ids)}-{kind}",
        "event_type": kind,
        "user_id": user,
        "timestamp": stamp,
        "page_url": f"/{kind}",
        "device_type": "mobile",
    }
    if kind in ("product_view", "add_to_cart"):
        base.update(product_id=fields.pop("product", "sku-00001"), quantity=1)
    if kind == "purchase":
        product = fields.pop("product", "sku-00001")
        base.update(
            order_id=f"o-{next(_ids)}",
            items=[{"product_id": product, "price": 1.0, "quantity": 1}],
            total=1.0,
            currency="USD",
        )
    base.update(fields)
    return base


async def send(kafka: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        for item in events:
            await producer.send(topic, orjson.dumps(item), key=item["user_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def p13n_config(
    kafka: str,
    topic: str,
    url: str,
    tmp_path: Path,
    env: dict[str, Any] | None = None,
    **service: Any,
) -> Config:
    settings: dict[str, Any] = {
        "name": SERVICE,
        "parent_segment_id": SEGMENT,
        "url": url,
        "triggers": ["product_view"],
        "context": {"device_type": "device_type"},
        "timeout_s": 1.0,
        "fallback_outputs": {"recommended_products": ["fallback-1"]},
        **service,
    }
    lines = ["[[personalization.services]]"]
    for key, value in settings.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / f"{topic}.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path, env_for(kafka, topic, url, **(env or {})))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


async def answers(kafka: str, topic: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(r.value) for r in await read_all(kafka, f"{topic}.personalization.{SERVICE}")
    ]


async def control(url: str, **settings: Any) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        (await http.put("/_sandbox/personalization", json=settings)).raise_for_status()


async def p13n_requests(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/_sandbox/personalization/requests")).json()  # type: ignore[no-any-return]


def sample(pipeline: Pipeline, name: str, **labels: str) -> float:
    value = pipeline.metrics.registry.get_sample_value(name, {"service": SERVICE, **labels})
    return value or 0.0
