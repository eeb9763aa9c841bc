"""The forwarder and `forwarder dlq` against a real broker secured as managed Kafka is.

One secured broker serves the whole module (SCRAM, PLAIN, mutual TLS and OAUTHBEARER listeners,
see forwarder/localkafka/_secured.py); topics are created and filled over its PLAINTEXT listener.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import BasicAuth, web

from forwarder.commands.traffic import TrafficGenerator, produce
from forwarder.config import load_config
from forwarder.engine.pipeline import Pipeline
from forwarder.localkafka import KafkaCluster, create_topic
from forwarder.localkafka._secured import CLIENT_KEY_PASSWORD, PLAIN_USER, SCRAM_USER
from forwarder.sandbox import RunningSandbox

from .support import REGISTRY, env_for, forwarder_cli, running, uuid_of, wait_delivered

OIDC_CLIENT = ("forwarder", "oidc-client-secret")


@pytest.fixture(scope="module")
def secured() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(nodes=1, secured=True)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def unsecured_jwt(subject: str = "forwarder", lifetime_s: int = 3600) -> str:
    """A token Kafka's unsecured validator accepts: unsigned, with sub, iat and exp."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


@pytest.fixture
async def token_endpoint() -> AsyncIterator[tuple[str, list[str]]]:
    """A minimal OIDC token endpoint (client-credentials grant); yields its URL and the grants."""
    grants: list[str] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        if (auth.login, auth.password) != OIDC_CLIENT or form.get("grant_type") != (
            "client_credentials"
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        grants.append(auth.login)
        body = {"access_token": unsecured_jwt(), "token_type": "Bearer", "expires_in": 3600}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/token", grants
    finally:
        await runner.cleanup()


def security_env(cluster: KafkaCluster, mechanism: str, tmp_path: Path) -> dict[str, str]:
    """``FORWARDER_KAFKA__*`` variables for one way in, as a user would set them."""
    tls = cluster.tls
    assert tls is not None
    env = {"FORWARDER_KAFKA__SSL_CAFILE": str(tls.ca)}
    if mechanism in ("SCRAM", "PLAIN"):
        user, password = SCRAM_USER if mechanism == "SCRAM" else PLAIN_USER
        env |= {
            "FORWARDER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "FORWARDER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512" if mechanism == "SCRAM" else "PLAIN",
            "FORWARDER_KAFKA__SASL_USERNAME": user,
            "FORWARDER_KAFKA__SASL_PASSWORD": password,
        }
    elif mechanism == "MTLS":
        key_password = tmp_path / "key-password"
        key_password.write_text(CLIENT_KEY_PASSWORD)
        env |= {
            "FORWARDER_KAFKA__SECURITY_PROTOCOL": "SSL",
            "FORWARDER_KAFKA__SSL_CERTFILE": str(tls.client_cert),
            "FORWARDER_KAFKA__SSL_KEYFILE": str(tls.client_key),
            "FORWARDER_KAFKA__SSL_KEY_PASSWORD_FILE": str(key_password),
        }
    else:
        token_file = tmp_path / "token"
        token_file.write_text(unsecured_jwt())
        env |= {
            "FORWARDER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "FORWARDER_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
            "FORWARDER_KAFKA__OAUTH_TOKEN_FILE": str(token_file),
        }
    return env


async def forward_and_inspect(
    cluster: KafkaCluster, listener: str, sandbox: RunningSandbox, env: dict[str, str]
) -> None:
    """1,000 events through the secured listener to the sandbox; `dlq stats` and `replay` over it."""
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    await create_topic(cluster.bootstrap_servers, topic, 2)
    generator = TrafficGenerator(seed=3, bad_ratio=0.03, run_id=topic)
    sent = await produce(cluster.bootstrap_servers, topic, generator, 1000)
    valid = {uuid_of(g.event_id) for g in sent if g.event_id and not g.bad}
    bad = sum(1 for g in sent if g.bad)
    full_env = {**env_for(cluster.listener(listener), topic, sandbox.url), **env}
    config = load_config(None, full_env)
    async with running(Pipeline(config, REGISTRY)):
        await wait_delivered(sandbox.url, len(valid), 60, f"1,000 events over {listener}")
    code, out, err = await forwarder_cli(full_env, "dlq", "stats", "--json")
    assert code == 0, err
    assert orjson.loads(out)[f"{topic}.dlq"]["total"] == bad > 0
    # Replay reads the dead-letter topic and writes to the source topic: both over the listener.
    code, out, err = await forwarder_cli(full_env, "dlq", "replay", "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert summary["replayed"] == summary["selected"] == bad, summary


@pytest.mark.parametrize("listener", ["SCRAM", "PLAIN", "MTLS", "OAUTH"])
async def test_forwards_and_inspects_dead_letters_over_each_secured_listener(
    secured: KafkaCluster, sandbox: RunningSandbox, tmp_path: Path, listener: str
) -> None:
    await forward_and_inspect(secured, listener, sandbox, security_env(secured, listener, tmp_path))


async def test_oauthbearer_token_comes_from_the_oidc_client_credentials_endpoint(
    secured: KafkaCluster,
    sandbox: RunningSandbox,
    token_endpoint: tuple[str, list[str]],
) -> None:
    url, grants = token_endpoint
    env = {
        "FORWARDER_KAFKA__SSL_CAFILE": str(secured.tls.ca if secured.tls else ""),
        "FORWARDER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "FORWARDER_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
        "FORWARDER_KAFKA__OAUTH_TOKEN_URL": url,
        "FORWARDER_KAFKA__OAUTH_CLIENT_ID": OIDC_CLIENT[0],
        "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET": OIDC_CLIENT[1],
    }
    await forward_and_inspect(secured, "OAUTH", sandbox, env)
    assert grants, "the token endpoint was never asked"


def _scram(cluster: KafkaCluster, tmp_path: Path, **changes: str) -> dict[str, str]:
    env = {
        **env_for(cluster.listener("SCRAM"), "clickstream", "http://127.0.0.1:9"),
        **security_env(cluster, "SCRAM", tmp_path),
    }
    env.update({f"FORWARDER_KAFKA__{k.upper()}": v for k, v in changes.items()})
    return env


async def _start_up_fails(env: dict[str, str], key: str, *words: str) -> str:
    code, out, err = await forwarder_cli(env, "run")
    assert code == 2, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert f"config key '{key}'" in errors[0]
    for word in words:
        assert word in errors[0]
    assert "Traceback" not in out + err
    return out + err


async def test_a_wrong_password_stops_start_up_naming_the_password(
    secured: KafkaCluster, tmp_path: Path
) -> None:
    env = _scram(secured, tmp_path, sasl_password="not-the-password")
    output = await _start_up_fails(env, "kafka.sasl_password", "authentication failed", "alice")
    assert "not-the-password" not in output


async def test_an_untrusted_broker_certificate_stops_start_up_naming_the_ca_file(
    secured: KafkaCluster, tmp_path: Path
) -> None:
    assert secured.tls is not None
    env = _scram(secured, tmp_path, ssl_cafile=str(secured.tls.other_ca))
    await _start_up_fails(env, "kafka.ssl_cafile", "not trusted")


async def test_a_host_name_mismatch_stops_start_up_naming_the_servers(
    secured: KafkaCluster, tmp_path: Path
) -> None:
    env = _scram(secured, tmp_path, bootstrap_servers=secured.listener("WRONGHOST"))
    await _start_up_fails(env, "kafka.bootstrap_servers", "does not name that host")


async def test_mutual_tls_without_a_client_certificate_names_the_certificate_key(
    secured: KafkaCluster, tmp_path: Path
) -> None:
    assert secured.tls is not None
    env = {
        **env_for(secured.listener("MTLS"), "clickstream", "http://127.0.0.1:9"),
        "FORWARDER_KAFKA__SECURITY_PROTOCOL": "SSL",
        "FORWARDER_KAFKA__SSL_CAFILE": str(secured.tls.ca),
    }
    await _start_up_fails(env, "kafka.ssl_certfile", "client certificate")


async def test_a_refused_oidc_client_secret_stops_start_up_naming_the_token_url(
    secured: KafkaCluster, tmp_path: Path, token_endpoint: tuple[str, list[str]]
) -> None:
    url, grants = token_endpoint
    env = {
        **env_for(secured.listener("OAUTH"), "clickstream", "http://127.0.0.1:9"),
        **security_env(secured, "OAUTH", tmp_path),
        "FORWARDER_KAFKA__OAUTH_TOKEN_FILE": "",
        "FORWARDER_KAFKA__OAUTH_TOKEN_URL": url,
        "FORWARDER_KAFKA__OAUTH_CLIENT_ID": OIDC_CLIENT[0],
        "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET": "not-the-secret",
    }
    output = await _start_up_fails(env, "kafka.oauth_token_url", "401", "oauth_client_id")
    assert "not-the-secret" not in output
    assert not grants
