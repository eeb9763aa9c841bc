"""Each error class of the seed's table, against the sandbox's personalization service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox

from .p13n_support import answers, control, event, p13n_config, p13n_requests, sample, send
from .support import REGISTRY, running, wait_delivered, wait_for

CLEAR: dict[str, Any] = {"errors": [], "hang_rate": 0.0, "reset_rate": 0.0}
RETRYABLE = [
    ("500", {"errors": [{"status": 500, "rate": 1.0}]}, 500, None),
    ("503", {"errors": [{"status": 503, "rate": 1.0}]}, 503, None),
    ("timeout", {"hang_rate": 1.0}, None, "timeout"),
    ("reset", {"reset_rate": 1.0}, None, "connection"),
]


async def _answer_for(kafka: str, topic: str, trigger: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def published() -> bool:
        found[:] = [
            a
            for a in await answers(kafka, topic)
            if a["trigger"]["event_id"] == trigger["event_id"]
        ]
        return bool(found)

    await wait_for(published, 30, f"the answer to {trigger['event_id']}")
    return found[0]


async def test_server_errors_timeouts_and_resets_retry_then_fall_back_then_resume(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    config = p13n_config(kafka, topic, sandbox.url, tmp_path, timeout_s=0.5)
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        for kind, faults, status, code in RETRYABLE:
            await control(sandbox.url, faults={**CLEAR, **faults})
            before = len((await p13n_requests(sandbox.url))["times"])
            failing = event("product_view", f"{kind}-1")
            await send(kafka, topic, [failing])
            answer = await _answer_for(kafka, topic, failing)
            assert answer["source"] == "fallback", kind
            assert answer["section"] == "fallback"
            assert answer["outputs"] == {"recommended_products": ["fallback-1"]}
            assert answer["error"]["status"] == status, kind
            if code:
                assert answer["error"]["code"] == code, kind
            tries = len((await p13n_requests(sandbox.url))["times"]) - before
            assert tries == 3, f"{kind}: bounded retries, then the fallback"
            await control(sandbox.url, faults=CLEAR)
            healed = event("product_view", f"{kind}-2")
            await send(kafka, topic, [healed])
            answer = await _answer_for(kafka, topic, healed)
            assert answer["source"] == "service", kind
        fallbacks = sample(pipeline, "forwarder_personalization_fallbacks_total")
    assert fallbacks == len(RETRYABLE)


async def test_401_and_404_stop_calls_publish_nothing_and_resume_by_probing(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    config = p13n_config(kafka, topic, sandbox.url, tmp_path)
    pipeline = Pipeline(config, REGISTRY)
    gauge = "forwarder_personalization_misconfigured"
    delivered = 0
    async with running(pipeline):
        for status, fault, clear in (
            (401, {"api_key": "1/wrong"}, {"api_key": None}),
            (404, {"services": ["1/other"]}, {"services": []}),
        ):
            await control(sandbox.url, **fault)
            first = event("product_view", f"bad-{status}-1")
            await send(kafka, topic, [first])
            delivered += 1

            async def misconfigured() -> bool:
                return sample(pipeline, gauge) == 1.0

            await wait_for(misconfigured, 30, f"the service marked misconfigured on {status}")
            ready, detail = pipeline.readiness()
            assert ready, "a misconfigured service does not make the forwarder unready"
            assert f"personalization misconfigured: recs ({status})" in detail
            ignored = event("product_view", f"bad-{status}-2")
            await send(kafka, topic, [ignored])
            delivered += 1
            await wait_delivered(sandbox.url, delivered, 30, "ingestion goes on")
            await control(sandbox.url, **clear)

            async def resumed() -> bool:
                return sample(pipeline, gauge) == 0.0

            await wait_for(resumed, 30, "a probe found the service healthy again")
            assert pipeline.readiness() == (True, "ready")
            healed = event("product_view", f"ok-{status}")
            await send(kafka, topic, [healed])
            delivered += 1
            answer = await _answer_for(kafka, topic, healed)
            assert answer["source"] == "service"
            published = {a["trigger"]["event_id"] for a in await answers(kafka, topic)}
            assert not {first["event_id"], ignored["event_id"]} & published
        dropped = sample(
            pipeline, "forwarder_personalization_triggers_dropped_total", cause="misconfigured"
        )
    assert dropped >= 4
    assert sample(pipeline, "forwarder_personalization_fallbacks_total") == 0


async def test_429_honours_retry_after_and_every_trigger_is_still_answered(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    await control(sandbox.url, rate=1, burst_rate=1, burst_seconds=0)
    config = p13n_config(kafka, topic, sandbox.url, tmp_path, max_age_s=20, max_in_flight=1)
    triggers = [event("product_view", f"busy-{i}") for i in range(3)]
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await send(kafka, topic, triggers)
        for trigger in triggers:
            answer = await _answer_for(kafka, topic, trigger)
            assert answer["source"] == "service"
    seen = await p13n_requests(sandbox.url)
    assert seen["statuses"].get("429", 0) >= 1
    times, outcomes = seen["times"], seen["outcomes"]
    assert len(times) >= 4
    # One request at a time (max_in_flight 1): after each 429 (Retry-After: 1) the next request
    # waited the second out (0.1 s of slack for clock and scheduling jitter).
    for (at, outcome), later in zip(zip(times, outcomes, strict=True), times[1:], strict=False):
        if outcome == "429":
            assert later - at >= 0.9, (at, later)


async def test_a_retry_after_of_a_day_holds_the_service_back_only_up_to_the_cap(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    day = {"errors": [{"status": 429, "rate": 1.0, "retry_after_s": 86400}]}
    await control(sandbox.url, faults={**CLEAR, **day})
    config = p13n_config(
        kafka,
        topic,
        sandbox.url,
        tmp_path,
        env={"retry__max_retry_after_s": 2},
        max_age_s=60,
        max_in_flight=1,
    )
    trigger = event("product_view", "patient")
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await send(kafka, topic, [trigger])

        async def throttled() -> bool:
            return (await p13n_requests(sandbox.url))["statuses"].get("429", 0) >= 1

        await wait_for(throttled, 30, "a 429 with Retry-After: 86400")
        await control(sandbox.url, faults=CLEAR)
        answer = await _answer_for(kafka, topic, trigger)
    assert answer["source"] == "service", answer
