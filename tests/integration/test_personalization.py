"""Personalization activation end to end: real broker, the sandbox's ingest and personalization."""

from __future__ import annotations

from pathlib import Path

import httpx

from forwarder.core.rate_reserve import ReserveLimiter, busiest_window
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox

from .p13n_support import answers, control, event, p13n_config, p13n_requests, sample, send
from .support import REGISTRY, running, wait_delivered, wait_for


async def test_an_answer_reflects_the_views_ingested_before_it_and_the_section(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    config = p13n_config(kafka, topic, sandbox.url, tmp_path)
    # A slow ingest endpoint: an answer asked before the ingest request returned would miss it.
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        (await http.put("/_sandbox/faults", json={"latency_ms": 300})).raise_for_status()
    cart = event("add_to_cart", "alice", product="sku-00009")
    views = [event("product_view", "alice", product=f"sku-0000{i}") for i in (1, 2, 3)]
    bob = event("product_view", "bob", product="sku-00005")
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await send(kafka, topic, [cart])
        await wait_delivered(sandbox.url, 1, 30, "the cart event ingested")
        await send(kafka, topic, [*views, bob])

        async def answered() -> bool:
            got = await answers(kafka, topic)
            return {a["trigger"]["event_id"] for a in got} >= {
                views[-1]["event_id"],
                bob["event_id"],
            }

        await wait_for(answered, 30, "answers for alice's last view and bob's view")
    got = await answers(kafka, topic)
    product_of = {e["event_id"]: e["product_id"] for e in [*views, bob]}
    for answer in got:
        # Each answer was asked after its own trigger was ingested: it lists that product.
        assert product_of[answer["trigger"]["event_id"]] in answer["outputs"]["viewed_products_30d"]
        assert answer["source"] in ("service", "cache")
        assert answer["error"] is None
    last = next(a for a in got if a["trigger"]["event_id"] == views[-1]["event_id"])
    assert last["user_id"] == "alice"
    assert last["section"] == "cart_abandoners"
    assert last["outputs"]["viewed_products_30d"] == ["sku-00003", "sku-00002", "sku-00001"]
    assert set(last["trigger"]) == {"event_id", "uuid", "event_type", "time"}
    assert last["requested_at"].endswith("Z") and last["latency_ms"] >= 0
    bob_answer = next(a for a in got if a["user_id"] == "bob")
    assert bob_answer["section"] == "default"


async def test_a_burst_of_1000_triggers_from_50_users_stays_under_the_limit(
    kafka: str, topic: str, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    rate, burst_rate, burst_seconds = 20.0, 40.0, 1.0
    await control(
        sandbox.url,
        rate=rate,
        burst_rate=burst_rate,
        burst_seconds=burst_seconds,
    )
    config = p13n_config(
        kafka,
        topic,
        sandbox.url,
        tmp_path,
        triggers=["page_view"],
        requests_per_second=rate,
        burst_per_second=burst_rate,
        burst_seconds=burst_seconds,
        max_in_flight=4,
    )
    users = [f"u{i:02d}" for i in range(50)]
    profile = [event("product_view", u, product=f"sku-{i:05d}") for i, u in enumerate(users)]
    triggers = [event("page_view", users[i % 50]) for i in range(1000)]
    pipeline = Pipeline(config, REGISTRY)
    async with running(pipeline):
        await send(kafka, topic, profile)
        await wait_delivered(sandbox.url, 50, 30, "the profile events ingested")
        await send(kafka, topic, triggers)
        await wait_delivered(sandbox.url, 1050, 60, "every trigger ingested")

        async def every_user_answered() -> bool:
            return {a["user_id"] for a in await answers(kafka, topic)} == set(users)

        await wait_for(every_user_answered, 60, "an answer for every user")
        # Single flight: a slow answer (0.5 s) is still in flight when the same request is due.
        await control(sandbox.url, faults={"latency_ms": 500})
        asked = len((await p13n_requests(sandbox.url))["times"])
        first = event("page_view", "u00", device_type="tablet")
        await send(kafka, topic, [first])

        async def in_flight() -> bool:
            return len((await p13n_requests(sandbox.url))["times"]) > asked

        await wait_for(in_flight, 30, "the first tablet request at the service", every=0.02)
        second = event("page_view", "u00", device_type="tablet")
        await send(kafka, topic, [second])

        async def both_answered() -> bool:
            ids = {a["trigger"]["event_id"] for a in await answers(kafka, topic)}
            return {first["event_id"], second["event_id"]} <= ids

        await wait_for(both_answered, 30, "both tablet triggers answered")
        hits = sample(pipeline, "forwarder_personalization_cache_lookups_total", result="hit")
        coalesced = sample(pipeline, "forwarder_personalization_coalesced_total")
        superseded = sample(
            pipeline, "forwarder_personalization_triggers_dropped_total", cause="superseded"
        )
    seen = await p13n_requests(sandbox.url)
    limit = ReserveLimiter(rate, burst_rate, burst_seconds)
    for window in (0.25, 0.5, 1.0, 2.0):
        # 2 requests of slack: arrival times at the server jitter against the client's clock.
        assert busiest_window(seen["times"], window) <= limit.bound(window) + 2, window
    assert len(seen["times"]) < 200, "the cache, coalescing and latest-wins cut requests"
    assert hits + coalesced + superseded >= 800
    assert hits > 0
    assert coalesced > 0
    last: dict[str, dict[str, object]] = {}
    for answer in await answers(kafka, topic):
        last[answer["user_id"]] = answer
    for i, user in enumerate(users):
        outputs = last[user]["outputs"]
        assert isinstance(outputs, dict)
        assert outputs["viewed_products_30d"] == [f"sku-{i:05d}"]
    print(
        f"requests {len(seen['times'])}, statuses {seen['statuses']}, cache hits {hits:.0f}, "
        f"coalesced {coalesced:.0f}, superseded {superseded:.0f}"
    )
