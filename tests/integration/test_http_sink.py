"""The HTTP sink against the real sandbox: what a request leaves behind."""

from __future__ import annotations

import gc
import uuid
from collections import Counter

import orjson
import pytest

from forwarder.adapters.http_sink import HttpSink, Transport
from forwarder.config import load_config
from forwarder.sandbox import RunningSandbox
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN


def _body(count: int) -> bytes:
    event = {"event_type": "page_view", "user_id": "u", "timestamp": "2026-12-01T00:00:00Z"}
    events = [{**event, "event_id": f"e-{i}", "uuid": str(uuid.uuid4())} for i in range(count)]
    return orjson.dumps({"events": events})


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_sent_request_is_freed_at_once_not_left_to_the_cycle_collector(
    sandbox: RunningSandbox, transport: Transport
) -> None:
    """httpx binds a response to its stream and the stream back to it; left so, every
    request's body (up to 5 MB) lives until the collector next runs, and a process that
    collects rarely holds tens of them."""
    config = load_config(
        None,
        {
            "TD_API_KEY": DEV_API_KEY,
            "TD_WP13N_TOKEN": DEV_TOKEN,
            "FORWARDER_ENDPOINT__URL": sandbox.url,
            "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
        },
    )
    sink = HttpSink(config.endpoint, config.limits, transport)
    flags = gc.get_debug()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept to be read
    try:
        for _ in range(5):
            result = await sink.send("clickstream.page_view", _body(10))
            assert result.status == 204, result
        gc.collect()
        left = Counter(
            type(o).__qualname__
            for o in gc.garbage
            if type(o).__module__.split(".")[0] in ("httpx", "httpx_aiohttp", "aiohttp")
        )
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        await sink.aclose()
    assert not left.get("Request") and not left.get("Response"), (
        f"requests left to the cycle collector: {dict(left)}"
    )
