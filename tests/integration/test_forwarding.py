"""End to end: Kafka → decode and validate → batch → sandbox, invalid input to the DLQ."""

from __future__ import annotations

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox

from .support import (
    REGISTRY,
    config_for,
    headers_of,
    read_all,
    running,
    sandbox_uuids,
    uuid_of,
    wait_delivered,
    wait_for,
)


async def test_every_valid_event_is_delivered_and_every_invalid_one_dead_lettered(
    kafka: str, topic: str, sandbox: RunningSandbox
) -> None:
    sent = await produce(kafka, topic, TrafficGenerator(seed=7, bad_ratio=0.05, run_id=topic), 3000)
    valid = {uuid_of(g.event_id) for g in sent if g.event_id}
    bad = [g for g in sent if g.bad]
    assert bad, "the generator must produce bad events"
    pipeline = Pipeline(config_for(kafka, topic, sandbox.url), REGISTRY)
    async with running(pipeline):
        await wait_delivered(sandbox.url, len(valid), 60, "every valid event at the sandbox")

        async def dead_lettered() -> bool:
            return len(await read_all(kafka, f"{topic}.dlq")) >= len(bad)

        await wait_for(dead_lettered, 30, "every invalid event in the DLQ")
    assert set(await sandbox_uuids(sandbox.url)) == valid
    dlq = await read_all(kafka, f"{topic}.dlq")
    assert sorted(r.value for r in dlq) == sorted(g.value for g in bad)
    by_value = {g.value: g for g in bad}
    for record in dlq:
        headers = headers_of(record)
        expected = by_value[record.value]
        assert headers["forwarder.error.reason"] == expected.bad
        assert headers["forwarder.error.detail"]
        assert headers["forwarder.original.topic"] == topic
        assert record.key == expected.key
        if expected.bad == "schema_violation":
            assert headers["forwarder.error.detail"].startswith("/timestamp")
    assert {h["forwarder.error.reason"] for h in map(headers_of, dlq)} <= {
        "invalid_json",
        "not_an_object",
        "schema_violation",
        "unknown_event_type",
        "too_large",
    }
    # Every offset was committed once all events were done.
    assert not await read_all(kafka, f"{topic}.retry.1")
