"""One personalization service's runner against a scripted client: the order its answers are
published in, and its health as calls overlap (issue 27 items 4 and 5)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from forwarder.adapters.personalization_client import CallResult
from forwarder.config import PersonalizationService, Secret
from forwarder.engine.personalization.runner import ServiceRunner
from forwarder.telemetry.metrics import Metrics
from tests.fakes import FakeBroker, FakePublisher

TOPIC = "clicks.personalization.recs"


def _answer(section: str) -> CallResult:
    return CallResult(200, orjson.dumps({"section": section, "outputs": {"n": 1}}))


class ScriptedClient:
    """Answers each call by the request's ``page_url``: a result, or a future to wait for."""

    def __init__(self) -> None:
        self.script: dict[str, list[CallResult | asyncio.Future[CallResult]]] = {}
        self.calls: list[str] = []

    async def call(self, body: dict[str, Any], *, test: bool = False) -> CallResult:
        page = str(body.get("page_url"))
        self.calls.append(page)
        step = self.script[page].pop(0)
        return await step if isinstance(step, asyncio.Future) else step

    async def aclose(self) -> None:
        return None


def _runner(**settings: Any) -> tuple[ServiceRunner, ScriptedClient, FakeBroker, Metrics]:
    service = PersonalizationService(
        name="recs",
        parent_segment_id="1",
        topic=TOPIC,
        triggers=("product_view",),
        context={"page_url": "page_url"},
        cache_ttl_s=0,
        max_in_flight=2,
        **settings,
    )
    broker = FakeBroker(partitions=1)
    metrics = Metrics()
    runner = ServiceRunner(service, Secret("1/k"), FakePublisher(broker), metrics, random.Random(0))
    client = ScriptedClient()
    runner.start(client)
    return runner, client, broker, metrics


def _offer(runner: ServiceRunner, user: str, page: str, event_id: str) -> None:
    event = {"event_type": "product_view", "user_id": user, "page_url": page, "event_id": event_id}
    runner.offer(event, f"uuid-{event_id}", asyncio.get_running_loop().time())
    runner.offered()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.002)


def _published(broker: FakeBroker) -> list[dict[str, Any]]:
    return [orjson.loads(r.value or b"") for r in broker.records(TOPIC)]


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_slow_answer_is_not_published_after_a_newer_one_for_its_user() -> None:
    runner, client, broker, metrics = _runner()
    slow: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
    client.script = {"/1": [slow], "/2": [_answer("new")]}
    try:
        _offer(runner, "u", "/1", "t1")
        await _until(lambda: client.calls == ["/1"], "T1 asked")
        _offer(runner, "u", "/2", "t2")
        await _until(lambda: len(_published(broker)) == 1, "T2's answer published")
        slow.set_result(_answer("old"))  # T1's answer comes back after T2's went out
        await _until(
            lambda: (
                _sample(
                    metrics,
                    "forwarder_personalization_triggers_dropped_total",
                    service="recs",
                    cause="superseded",
                )
                == 1
                or len(_published(broker)) > 1
            ),
            "T1's answer dropped or published",
        )
        assert [r["trigger"]["event_id"] for r in _published(broker)] == ["t2"]
    finally:
        await runner.stop()


async def test_a_call_in_flight_that_succeeds_after_a_401_ends_the_misconfigured_state() -> None:
    runner, client, broker, metrics = _runner()
    held: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
    client.script = {"/a": [held], "/b": [CallResult(401, b"{}")]}
    gauge = metrics.p13n_misconfigured.labels("recs")
    try:
        with structlog.testing.capture_logs() as logs:
            _offer(runner, "a", "/a", "ea")
            await _until(lambda: client.calls == ["/a"], "a asked")
            _offer(runner, "b", "/b", "eb")
            await _until(lambda: gauge._value.get() == 1, "misconfigured after the 401")
            held.set_result(_answer("fine"))  # the other worker's call answers 200
            await _until(lambda: len(_published(broker)) == 1, "a's answer published")
        assert gauge._value.get() == 0
        assert not runner.health.misconfigured
        assert "personalization_service_resumed" in [e["event"] for e in logs]
    finally:
        await runner.stop()
