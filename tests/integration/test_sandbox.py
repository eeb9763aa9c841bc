"""The sandbox honours the destination's contract, one test per row, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from forwarder.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

CT = "application/vnd.treasuredata.v1+json"
HEADERS = {
    "Authorization": f"TD1 {DEV_API_KEY}",
    "WP13n-Token": DEV_TOKEN,
    "Content-Type": CT,
    "Accept": CT,
}


def _events(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"uuid": str(uuid.uuid4()), "event_type": "page_view", **extra} for _ in range(count)]


def _body(events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"events": events})


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=HEADERS, timeout=5) as http:
        yield http


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/_sandbox/stats")).json()  # type: ignore[no-any-return]


def _code(response: httpx.Response) -> int | None:
    return response.json()["error"].get("code")  # type: ignore[no-any-return]


async def test_accepts_a_batch_with_204_and_records_it(client: httpx.AsyncClient) -> None:
    events = _events(3)
    response = await client.post("/clickstream/page_view", content=_body(events))
    assert response.status_code == 204
    stats = await _stats(client)
    assert stats["accepted_events"] == 3
    assert stats["by_destination"] == {"clickstream.page_view": 3}
    uuids = (await client.get("/_sandbox/uuids")).json()["uuids"]
    assert uuids == {e["uuid"]: 1 for e in events}


async def test_ingest_profile_needs_no_token() -> None:
    running = await start_sandbox(SandboxConfig(port=0, profile="ingest", rate=0))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=5) as http:
            headers = {"Authorization": f"TD1 {DEV_API_KEY}", "Content-Type": CT}
            response = await http.post(
                "/db_one/tbl_one", content=_body(_events(1)), headers=headers
            )
            assert response.status_code == 204
    finally:
        await running.stop()


@pytest.mark.parametrize("authorization", [None, "TD1 1/wrong", f"Bearer {DEV_API_KEY}"])
async def test_wrong_or_missing_api_key_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = dict(HEADERS)
    headers.pop("Authorization")
    if authorization:
        headers["Authorization"] = authorization
    client.headers.pop("Authorization")
    response = await client.post(
        "/clickstream/page_view", content=_body(_events(1)), headers=headers
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, 3000), ("1/only-two", 3003), ("1//x", 3003), ("1/1/unknown", 3001)],
)
async def test_token_errors(client: httpx.AsyncClient, token: str | None, code: int) -> None:
    client.headers.pop("WP13n-Token")
    headers = {"WP13n-Token": token} if token else {}
    response = await client.post(
        "/clickstream/page_view", content=_body(_events(1)), headers=headers
    )
    assert (response.status_code, _code(response)) == (400, code)


async def test_token_of_another_account_is_3002(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/auth", json={"tokens": [DEV_TOKEN, "2/1/other-account"]})
    response = await client.post(
        "/clickstream/page_view",
        content=_body(_events(1)),
        headers={"WP13n-Token": "2/1/other-account"},
    )
    assert (response.status_code, _code(response)) == (400, 3002)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"no_events": []}',
        b'{"events": []}',
        b'{"events": [1, 2]}',
        _body(_events(501)),
    ],
    ids=["not-json", "no-events", "empty-events", "non-object-event", "over-500-events"],
)
async def test_bad_bodies_are_400_3004(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/clickstream/page_view", content=body)
    assert (response.status_code, _code(response)) == (400, 3004)


async def test_event_over_one_megabyte_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/clickstream/page_view", content=_body(_events(1, blob="x" * 1_000_001))
    )
    assert response.status_code == 413


async def test_body_over_five_megabytes_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/clickstream/page_view", content=_body(_events(6, blob="x" * 900_000))
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/ab/page_view", "/clickstream/Page-View"])
async def test_invalid_names_are_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post(path, content=_body(_events(1)))).status_code == 404


async def test_rejected_destination_is_404_until_cleared(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"reject_destinations": ["clickstream.search"]})
    assert (await client.post("/clickstream/search", content=_body(_events(1)))).status_code == 404
    assert (
        await client.post("/clickstream/page_view", content=_body(_events(1)))
    ).status_code == 204
    await client.put("/_sandbox/faults", json={"reject_destinations": []})
    assert (await client.post("/clickstream/search", content=_body(_events(1)))).status_code == 204


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/clickstream/page_view", content=_body(_events(1)), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_rate_limit_answers_429_2003_with_retry_after(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/limits", json={"rate": 1, "burst": 2})
    statuses = [
        (await client.post("/clickstream/page_view", content=_body(_events(1)))) for _ in range(3)
    ]
    assert [r.status_code for r in statuses] == [204, 204, 429]
    assert _code(statuses[2]) == 2003
    assert int(statuses[2].headers["Retry-After"]) >= 1
    assert (await _stats(client))["rejected"] == {"429:2003": 1}


@pytest.mark.parametrize(("status", "code"), [(500, 1003), (429, 2013), (503, None), (500, 2001)])
async def test_injected_errors_at_rate_one_always_fail(
    client: httpx.AsyncClient, status: int, code: int | None
) -> None:
    await client.put(
        "/_sandbox/faults", json={"errors": [{"status": status, "code": code, "rate": 1.0}]}
    )
    for _ in range(5):
        response = await client.post("/clickstream/page_view", content=_body(_events(1)))
        assert response.status_code == status
        if code is not None:
            assert _code(response) == code
        if status in (429, 503):
            assert response.headers["Retry-After"] == "1"
    assert (await _stats(client))["accepted_events"] == 0


async def test_injected_errors_follow_their_rate(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"errors": ["500:1003=0.3"]})
    statuses = [
        (await client.post("/clickstream/page_view", content=_body(_events(1)))).status_code
        for _ in range(200)
    ]
    failed = statuses.count(500)
    assert 30 <= failed <= 90, failed  # seeded: deterministic, and near 60
    assert statuses.count(204) == 200 - failed


@pytest.mark.parametrize("shape", ["code", "error_code", "error.code", "errors[0].code"])
async def test_error_body_shapes_carry_the_code(client: httpx.AsyncClient, shape: str) -> None:
    await client.put("/_sandbox/faults", json={"errors": ["500:9999=1"], "error_shape": shape})
    response = await client.post("/clickstream/page_view", content=_body(_events(1)))
    from forwarder.core.classify import error_code

    assert error_code(response.content) == 9999


async def test_latency_is_added(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"latency_ms": 300})
    started = time.monotonic()
    assert (
        await client.post("/clickstream/page_view", content=_body(_events(1)))
    ).status_code == 204
    assert time.monotonic() - started >= 0.3


async def test_hung_request_times_out_at_the_client(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"hang_rate": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/clickstream/page_view", content=_body(_events(1)), timeout=0.5)
    assert (await _stats(client))["accepted_events"] == 0


async def test_reset_drops_the_connection(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"reset_rate": 1.0})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await client.post("/clickstream/page_view", content=_body(_events(1)))
    await client.put("/_sandbox/faults", json={"reset_rate": 0.0})
    assert (
        await client.post("/clickstream/page_view", content=_body(_events(1)))
    ).status_code == 204


async def test_receipts_fail_some_events_and_record_only_successes(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/_sandbox/faults", json={"receipts_fail_rate": 0.3})
    events = _events(50)
    response = await client.post("/clickstream/page_view", content=_body(events))
    assert response.status_code == 206
    receipts = response.json()["receipts"]
    assert len(receipts) == 50
    failed = {e["uuid"] for e, r in zip(events, receipts, strict=True) if not r["success"]}
    assert failed
    assert all(r["code"] == 3004 for r in receipts if not r["success"])
    uuids = (await client.get("/_sandbox/uuids")).json()["uuids"]
    assert set(uuids) == {e["uuid"] for e in events} - failed


async def test_reject_match_rejects_whole_batches_with_3004(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"reject_match": {"field": "poison", "value": True}})
    bad = _events(3) + _events(1, poison=True)
    response = await client.post("/clickstream/page_view", content=_body(bad))
    assert (response.status_code, _code(response)) == (400, 3004)
    assert (
        await client.post("/clickstream/page_view", content=_body(_events(3)))
    ).status_code == 204
    stats = await _stats(client)
    assert stats["accepted_events"] == 3
    assert stats["rejected"] == {"400:3004": 1}


async def test_counts_distinct_uuids_duplicates_and_rejections(client: httpx.AsyncClient) -> None:
    events = _events(4)
    await client.post("/clickstream/page_view", content=_body(events))
    await client.post("/clickstream/page_view", content=_body(events[:2]))
    await client.post("/clickstream/page_view", content=b"nope")
    stats = await _stats(client)
    assert stats["accepted_events"] == 6
    assert stats["distinct_uuids"] == 4
    assert stats["duplicates"] == 2
    assert stats["rejected"] == {"400:3004": 1}
    assert stats["requests"] == 3
    rows = (await client.get("/_sandbox/events")).json()["events"]
    assert sorted(r[2] for r in rows) == [1, 1, 2, 2]
    assert len((await client.get("/_sandbox/requests")).json()["times"]) == 3


async def test_reset_forgets_records_and_optionally_faults(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/faults", json={"latency_ms": 1})
    await client.post("/clickstream/page_view", content=_body(_events(2)))
    await client.post("/_sandbox/reset", json={})
    assert (await _stats(client))["accepted_events"] == 0
    assert (await client.get("/_sandbox/faults")).json()["latency_ms"] == 1
    await client.post("/_sandbox/reset", json={"faults": True})
    assert (await client.get("/_sandbox/faults")).json()["latency_ms"] == 0


async def test_unknown_fault_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.put("/_sandbox/faults", json={"explode": 1})
    assert response.status_code == 400
    assert "explode" in response.json()["error"]


async def test_capacity_model_serves_at_most_capacity_at_once_and_refuses_above_with_2013(
    client: httpx.AsyncClient,
) -> None:
    faults = {"capacity": 3, "service_ms": 200, "capacity_retry_after_s": 2}
    assert (await client.put("/_sandbox/faults", json=faults)).status_code == 200
    started = time.monotonic()
    responses = await asyncio.gather(
        *(client.post("/clickstream/page_view", content=_body(_events(1))) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [204, 204, 204, 429, 429]
    refused = [r for r in responses if r.status_code == 429]
    assert {_code(r) for r in refused} == {2013}
    assert {r.headers.get("Retry-After") for r in refused} == {"2"}
    assert time.monotonic() - started >= 0.2  # served in service_ms, longer with load
    assert (await _stats(client))["rejected"] == {"429:2013": 2}
    # The capacity changes at run time; a bad value is refused with the reason.
    assert (await client.put("/_sandbox/faults", json={"capacity": 5})).json()["capacity"] == 5
    bad = await client.put("/_sandbox/faults", json={"capacity": "many"})
    assert bad.status_code == 400 and "capacity" in bad.json()["error"]
