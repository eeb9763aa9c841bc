"""HTTPS to the endpoint: a private CA (endpoint.ca_file) and an egress proxy (CONNECT)."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from forwarder.adapters.http_sink import HttpSink, Transport
from forwarder.adapters.personalization_client import PersonalizationClient
from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.config import Config, load_config
from forwarder.engine.pipeline import Pipeline
from forwarder.sandbox import RunningSandbox, SandboxConfig, start_sandbox, write_test_certificate
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

from .connect_proxy import ConnectProxy
from .support import REGISTRY, env_for, running, uuid_of, wait_for

BODY = orjson.dumps(
    {
        "events": [
            {
                "event_id": "e-1",
                "event_type": "page_view",
                "user_id": "u",
                "timestamp": "2026-11-24T00:00:00Z",
                "time": 1795000000,
                "uuid": str(uuid.uuid4()),
            }
        ]
    }
)


@pytest.fixture
async def https_sandbox(tmp_path: Path) -> AsyncIterator[tuple[RunningSandbox, Path]]:
    """The sandbox serving HTTPS with a certificate of a private CA; yields it and the CA file."""
    ca, cert, key = write_test_certificate(tmp_path / "tls")
    running = await start_sandbox(
        SandboxConfig(port=0, rate=0, seed=1, tls_cert=str(cert), tls_key=str(key))
    )
    try:
        yield running, ca
    finally:
        await running.stop()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def _config(url: str, **env: str) -> Config:
    return load_config(
        None,
        {
            "TD_API_KEY": DEV_API_KEY,
            "TD_WP13N_TOKEN": DEV_TOKEN,
            "FORWARDER_ENDPOINT__URL": url,
            "FORWARDER_LIMITS__REQUESTS_PER_SECOND": "0",
            **env,
        },
    )


async def _post(config: Config, transport: Transport) -> tuple[int | None, str | None]:
    sink = HttpSink(config.endpoint, config.limits, transport)
    try:
        result = await sink.send("clickstream.page_view", BODY)
    finally:
        await sink.aclose()
    return result.status, result.transport_error


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_endpoint_with_a_private_ca_is_trusted_only_through_ca_file(
    https_sandbox: tuple[RunningSandbox, Path], transport: Transport
) -> None:
    sandbox, ca = https_sandbox
    assert sandbox.url.startswith("https://")
    status, error = await _post(_config(sandbox.url), transport)
    assert status is None
    assert error is not None
    assert "endpoint.ca_file" in error
    status, error = await _post(
        _config(sandbox.url, FORWARDER_ENDPOINT__CA_FILE=str(ca)), transport
    )
    assert (status, error) == (200, None) or (status, error) == (204, None)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("how", ["HTTPS_PROXY", "https_proxy", "FORWARDER_ENDPOINT__PROXY"])
async def test_requests_go_through_the_proxy_from_the_environment_or_the_config(
    https_sandbox: tuple[RunningSandbox, Path],
    proxy: ConnectProxy,
    transport: Transport,
    how: str,
) -> None:
    sandbox, ca = https_sandbox
    config = _config(sandbox.url, FORWARDER_ENDPOINT__CA_FILE=str(ca), **{how: proxy.url})
    status, error = await _post(config, transport)
    assert error is None
    assert status in (200, 204)
    assert proxy.tunnels == [f"127.0.0.1:{sandbox.port}"]


async def test_no_proxy_sends_requests_directly(
    https_sandbox: tuple[RunningSandbox, Path], proxy: ConnectProxy
) -> None:
    sandbox, ca = https_sandbox
    config = _config(
        sandbox.url,
        FORWARDER_ENDPOINT__CA_FILE=str(ca),
        HTTPS_PROXY=proxy.url,
        NO_PROXY="localhost,127.0.0.1",
    )
    assert config.endpoint.proxy == ""
    status, _ = await _post(config, "aiohttp")
    assert status in (200, 204)
    assert proxy.tunnels == []


async def test_forwarder_delivers_over_https_with_a_private_ca_through_a_proxy(
    kafka: str, topic: str, https_sandbox: tuple[RunningSandbox, Path], proxy: ConnectProxy
) -> None:
    sandbox, ca = https_sandbox
    sent = await produce(kafka, topic, TrafficGenerator(seed=5, run_id=topic), 300)
    valid = {uuid_of(g.event_id) for g in sent if g.event_id and not g.bad}
    env = {**env_for(kafka, topic, sandbox.url), "HTTPS_PROXY": proxy.url}
    env["FORWARDER_ENDPOINT__CA_FILE"] = str(ca)
    trust = ssl.create_default_context(cafile=str(ca))

    async def delivered() -> int:
        async with httpx.AsyncClient(base_url=sandbox.url, verify=trust) as http:
            return int((await http.get("/_sandbox/stats")).json()["distinct_uuids"])

    async def all_delivered() -> bool:
        return await delivered() >= len(valid)

    async with running(Pipeline(load_config(None, env), REGISTRY)):
        await wait_for(all_delivered, 60, "every event over HTTPS via the proxy")
    assert proxy.tunnels
    assert await delivered() == len(valid)


async def test_personalization_calls_use_the_endpoints_ca_and_the_proxy_for_their_host(
    https_sandbox: tuple[RunningSandbox, Path], proxy: ConnectProxy, tmp_path: Path
) -> None:
    sandbox, ca = https_sandbox
    toml = tmp_path / "forwarder.toml"
    toml.write_text(
        "[[personalization.services]]\n"
        'name = "recs"\nparent_segment_id = "394649"\n'
        f'url = "{sandbox.url}"\ntriggers = ["product_view"]\n'
    )
    env = {
        "TD_API_KEY": DEV_API_KEY,
        "TD_WP13N_TOKEN": DEV_TOKEN,
        "FORWARDER_ENDPOINT__CA_FILE": str(ca),
        "HTTPS_PROXY": proxy.url,
    }
    config = load_config(toml, env)
    (service,) = config.personalization.services
    client = PersonalizationClient(service, config.personalization.api_key)
    try:
        result = await client.call({"user_id": "dora"})
    finally:
        await client.aclose()
    assert result.transport_error is None
    assert result.status == 200
    assert proxy.tunnels == [f"127.0.0.1:{sandbox.port}"]
