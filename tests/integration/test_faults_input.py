"""Fault suite: hostile records, each between two valid events on one partition. None crashes
or stalls the forwarder; each is dead-lettered with a sensible reason and detail (or, for the
two whose impossible timestamp still makes a valid event, delivered as documented); every valid
neighbour is delivered.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from forwarder.commands.traffic import TrafficGenerator
from forwarder.core.decode import MAX_EVENT_BYTES
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import create_topic
from forwarder.sandbox import RunningSandbox

from .fault_support import Figures, wait_all_committed
from .support import REGISTRY, config_for, headers_of, read_all, running, uuid_of, wait_for

pytestmark = pytest.mark.faults

KAFKA_TIME_MS = 1_763_800_000_000  # the record timestamp of the impossible-timestamp events


@dataclass(frozen=True)
class Hostile:
    name: str
    value: bytes | None
    reason: str | None  # the dead-letter reason, or None: delivered
    detail: str = ""  # a part of the dead-letter detail


def _event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "page_view",
        "user_id": "u-hostile",
        "timestamp": "2026-11-22T10:30:00Z",
        "page_url": "https://shop.example.com/",
        **fields,
    }


def _hostile() -> list[Hostile]:
    valid = orjson.dumps(_event("h-template"))
    noise = random.Random(16).randbytes(300)
    deep_array = b"[" * 10_000 + b"]" * 10_000
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    two_mb = orjson.dumps(_event("h-2mb", blob="x" * 2_000_000))
    return [
        Hostile("random bytes", noise, "invalid_json", "not valid UTF-8 JSON"),
        Hostile("invalid UTF-8", valid[:-1] + b',"x":"\xc3\x28"}', "invalid_json", "UTF-8"),
        Hostile("UTF-8 BOM", b"\xef\xbb\xbf" + valid, "invalid_json", "byte order mark"),
        Hostile("10,000-deep array", deep_array, "invalid_json", "depth limit"),
        Hostile("10,000-deep object", deep_object, "invalid_json", "depth limit"),
        Hostile("2 MB value", two_mb, "too_large", f"the endpoint takes at most {MAX_EVENT_BYTES}"),
        Hostile(
            "10**400",
            valid[:-1] + b',"n":' + str(10**400).encode() + b"}",
            "invalid_json",
            "infinity",
        ),
        Hostile("NaN", valid[:-1] + b',"n":NaN}', "invalid_json", "expected a JSON value"),
        Hostile(
            "Infinity", valid[:-1] + b',"n":Infinity}', "invalid_json", "expected a JSON value"
        ),
        Hostile(
            "-Infinity", valid[:-1] + b',"n":-Infinity}', "invalid_json", "no digit after sign"
        ),
        Hostile(
            "duplicate keys, the last one invalid",
            orjson.dumps(_event("h-dup-bad"))[:-1] + b',"device_type":"tv","device_type":"fridge"}',
            "invalid_json",
            'repeats in one object: "device_type"',
        ),
        Hostile(
            "duplicate keys, both valid",
            orjson.dumps(_event("h-dup-ok"))[:-1]
            + b',"device_type":"tablet","device_type":"mobile"}',
            "invalid_json",
            'repeats in one object: "device_type"',
        ),
        Hostile("tombstone", None, "invalid_json", "tombstone"),
        Hostile("empty value", b"", "invalid_json", "empty"),
        Hostile("whitespace only", b" \t\r\n ", "invalid_json", "empty"),
        Hostile("null", b"null", "not_an_object", "JSON null"),
        Hostile(
            "lone surrogate escape", valid[:-1] + b',"s":"\\ud83d"}', "invalid_json", "surrogate"
        ),
        *(
            Hostile(
                f"event_type {shown}",
                orjson.dumps(_event(f"h-type-{index}", event_type=odd)),
                "unknown_event_type",
                "/event_type: ",
            )
            for index, (shown, odd) in enumerate(
                [
                    ("zero-width space", "page_view\u200b"),
                    ("fullwidth", "ｐａｇｅ_ｖｉｅｗ"),
                    ("right-to-left override", "\u202epage_view"),
                    ("Cyrillic a", "p\u0430ge_view"),
                    ("NUL", "page\u0000view"),
                    ("emoji", "page_view_\U0001f600"),
                    ("combining accent", "page_vie\u0301w"),
                    ("1,000 characters", "p" * 1000),
                ]
            )
        ),
        Hostile(
            "timestamp in year 1",
            orjson.dumps(_event("h-year-1", timestamp="0001-01-01T00:00:00Z")),
            None,
        ),
        Hostile(
            "timestamp in year 9999",
            orjson.dumps(_event("h-year-9999", timestamp="9999-12-31T23:59:59Z")),
            None,
        ),
        *(
            Hostile(
                f"event_id {shown}",
                orjson.dumps({**_event("x"), "event_id": bad}),
                "schema_violation",
                "/event_id",
            )
            for shown, bad in [("42", 42), ("null", None), ("an object", {"id": 1}), ("empty", "")]
        ),
    ]


async def test_hostile_records_are_dead_lettered_with_reasons_and_their_neighbours_delivered(
    kafka: str, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"hostile-{uuid.uuid4().hex[:8]}"
    # The source topic takes the 2 MB value (a broker's default is 1 MB).
    await create_topic(kafka, topic, 1, configs={"max.message.bytes": str(4 * 1024 * 1024)})
    hostile = _hostile()
    generator = TrafficGenerator(seed=164, run_id=topic)
    neighbours: list[str] = []
    place: dict[int, Hostile] = {}  # offset -> hostile record
    producer = AIOKafkaProducer(bootstrap_servers=kafka, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for item in hostile:
            for _ in range(2):
                good = generator.next()
                await producer.send_and_wait(topic, good.value, key=good.key, partition=0)
                neighbours.append(uuid_of(good.event_id or ""))
            meta = await producer.send_and_wait(
                topic, item.value, key=b"hostile", partition=0, timestamp_ms=KAFKA_TIME_MS
            )
            place[meta.offset] = item
        good = generator.next()
        await producer.send_and_wait(topic, good.value, key=good.key, partition=0)
        neighbours.append(uuid_of(good.event_id or ""))
    finally:
        await producer.stop()

    bodies: dict[str, dict[str, Any]] = {}
    recorder = sandbox.sandbox.recorder
    accept = recorder.accept

    def keep_bodies(destination: str, events: list[dict[str, Any]]) -> None:
        bodies.update((str(e.get("uuid")), e) for e in events)
        accept(destination, events)

    monkeypatch.setattr(recorder, "accept", keep_bodies)
    delivered_hostile = {
        uuid_of(orjson.loads(h.value or b"")["event_id"]): h for h in hostile if h.reason is None
    }
    dead = [h for h in hostile if h.reason]
    started = time.monotonic()
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url), REGISTRY)
    async with running(pipeline):

        async def all_done() -> bool:
            return all(u in recorder.counts for u in neighbours + list(delivered_hostile)) and len(
                await read_all(kafka, f"{topic}.dlq")
            ) >= len(dead)

        await wait_for(
            all_done, 90, "every neighbour delivered and every hostile record dead-lettered"
        )
        await wait_all_committed(kafka, f"g-{topic}", topic, 1, 30)
    elapsed = time.monotonic() - started

    dlq = await read_all(kafka, f"{topic}.dlq")
    wrong: list[str] = []
    for record in dlq:
        headers = headers_of(record)
        item = place[int(headers["forwarder.original.offset"])]
        reason, detail = (
            headers["forwarder.error.reason"],
            headers.get("forwarder.error.detail", ""),
        )
        if reason != item.reason or item.detail not in detail:
            wrong.append(f"{item.name}: {reason} {detail[:120]!r}")
        if record.value != item.value:
            wrong.append(f"{item.name}: the dead letter's value is not the original bytes")
        if len(detail.encode()) > 1024:
            wrong.append(f"{item.name}: a detail of {len(detail.encode())} bytes")
    assert not wrong, f"{len(wrong)} of {len(dlq)} dead letters wrong: {wrong}"
    assert sorted(
        place[int(headers_of(r)["forwarder.original.offset"])].name for r in dlq
    ) == sorted(h.name for h in dead), "each hostile record dead-lettered exactly once"

    # The ones that are valid events are delivered as documented in forwarder/core/decode.py.
    for uid, item in delivered_hostile.items():
        body = bodies[uid]
        assert "timestamp in year" in item.name, f"{item.name} delivered"
        assert body["time"] == KAFKA_TIME_MS // 1000, f"{item.name}: time {body['time']}"
        assert body["timestamp"] == orjson.loads(item.value or b"")["timestamp"]
    figures = Figures.of(
        f"hostile input: {len(hostile)} records between valid ones",
        set(neighbours) | set(delivered_hostile),
        sandbox,
        **{"dead-lettered": len(dlq), "seconds to clear": f"{elapsed:.1f}"},
    )
    figures.report()
    assert figures.lost == 0, f"valid events lost: {figures}"
    assert figures.duplicated == 0, f"duplicates without any fault: {figures}"
