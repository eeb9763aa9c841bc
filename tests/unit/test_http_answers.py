"""Answers the HTTP clients cannot read are results, never exceptions (a loopback server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from forwarder.adapters.http_sink import HttpSink
from forwarder.adapters.personalization_client import PersonalizationClient
from forwarder.config import PersonalizationService, Secret, load_config
from forwarder.telemetry.metrics import Metrics
from forwarder.telemetry.retry_after_report import RetryAfterReport

HOSTILE = ["²", "١٢", "Mon, 99 Foo 2026", "9" * 400, "soon"]


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """Answers ``/<status>/<index>`` with that status and ``Retry-After: HOSTILE[index]``."""

    async def answer(request: web.Request) -> web.Response:
        status = int(request.match_info["status"])
        value = HOSTILE[int(request.match_info["index"])]
        return web.Response(status=status, body=b"\xff not json", headers={"Retry-After": value})

    app = web.Application()
    app.router.add_post("/{status}/{index}", answer)
    app.router.add_post("/audiences/1/personalization/recs/{status}/{index}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _unreadable(metrics: Metrics, source: str) -> float:
    value = metrics.registry.get_sample_value(
        "forwarder_retry_after_unreadable_total", {"source": source}
    )
    return value or 0.0


async def test_the_sink_answers_a_result_for_any_retry_after(server: str) -> None:
    config = load_config(
        None,
        {"TD_API_KEY": "1/k", "TD_WP13N_TOKEN": "1/1/t", "FORWARDER_ENDPOINT__URL": server},
    )
    metrics = Metrics()
    sink = HttpSink(config.endpoint, config.limits, "aiohttp", RetryAfterReport(metrics))
    try:
        results = [await sink.send(f"429.{i}", b"{}") for i in range(len(HOSTILE))]
    finally:
        await sink.aclose()
    assert [r.status for r in results] == [429] * len(HOSTILE)
    assert [r.retry_after_s for r in results[:3]] == [None, None, None]
    assert _unreadable(metrics, "endpoint") == 4  # "9" * 400 is a (huge) number of seconds


async def test_the_personalization_client_answers_a_result_for_any_retry_after(
    server: str,
) -> None:
    service = PersonalizationService(
        name="recs", parent_segment_id="1", topic="t", triggers=("product_view",), url=server
    )
    metrics = Metrics()
    client = PersonalizationClient(service, Secret("1/k"), RetryAfterReport(metrics))
    try:
        for index in range(len(HOSTILE)):
            # The service's path with a status and a header chosen by the fake.
            client._path = f"{service.path}/503/{index}"
            result = await client.call({"user_id": "u"})
            assert result.status == 503
    finally:
        await client.aclose()
    assert _unreadable(metrics, "recs") == 4
