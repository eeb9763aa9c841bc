"""The [[personalization.services]] section: defaults, the key, and errors naming the key."""

from pathlib import Path

import pytest

from forwarder.config import load_config
from forwarder.engine.service import secrets_of
from forwarder.errors import ConfigError

SECRETS = {"TD_API_KEY": "1/abcdef0123456789", "TD_WP13N_TOKEN": "1/2/tok"}
SERVICE = """
[[personalization.services]]
name = "product_recommendations"
parent_segment_id = "394649"
triggers = ["product_view"]
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "forwarder.toml"
    path.write_text(text)
    return load_config(path, {**SECRETS, **(env or {})})


def test_none_by_default() -> None:
    assert load_config(None, SECRETS).personalization.services == ()


def test_a_service_gets_the_documented_defaults_and_the_ingest_key(tmp_path: Path) -> None:
    config = _load(tmp_path, SERVICE)
    (service,) = config.personalization.services
    assert service.topic == "clickstream.personalization.product_recommendations"
    assert service.base_url == "https://us01.cdp.treasuredata.com"
    assert service.path == "/audiences/394649/personalization/product_recommendations"
    assert (service.cache_ttl_s, service.requests_per_second, service.burst_per_second) == (
        60.0,
        100.0,
        200.0,
    )
    assert service.burst_seconds == 10.0
    assert service.user_field == "user_id"
    assert config.personalization.api_key.reveal() == SECRETS["TD_API_KEY"]


def test_a_separate_cdp_key_is_used_and_redacted_from_logs(tmp_path: Path) -> None:
    key_file = tmp_path / "cdp"
    key_file.write_text("7/cdp-key\n")
    config = _load(tmp_path, SERVICE, {"TD_PERSONALIZATION_API_KEY_FILE": str(key_file)})
    assert config.personalization.api_key.reveal() == "7/cdp-key"
    assert "7/cdp-key" in secrets_of(config)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("cache_ttl_s = 301", "personalization.services[0].cache_ttl_s"),
        ("cache_ttl_s = -1", "personalization.services[0].cache_ttl_s"),
        ("region = 'ap02'", "personalization.services[0].region"),
        ("url = 'http://example.com'", "personalization.services[0].url"),
        ("burst_per_second = 50", "personalization.services[0].burst_per_second"),
        ("requests_per_second = 0", "personalization.services[0].requests_per_second"),
        ("max_in_flight = 0", "personalization.services[0].max_in_flight"),
        ("context = { page_url = 1 }", "personalization.services[0].context"),
        ("fallback_outputs = 3", "personalization.services[0].fallback_outputs"),
        ("topic = 'bad topic'", "personalization.services[0].topic"),
        ("triger = ['x']", "personalization.services[0].triger"),
        ("timeout_s = 'soon'", "personalization.services[0].timeout_s"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, SERVICE + extra + "\n")
    assert caught.value.key == key


def test_missing_name_and_a_key_in_the_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "[[personalization.services]]\nparent_segment_id = '1'\ntriggers=['a']\n")
    assert caught.value.key == "personalization.services[0].name"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "[personalization]\napi_key = 'x'\n")
    assert caught.value.key == "personalization.api_key"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, SERVICE + SERVICE)
    assert "twice" in caught.value.problem


def test_a_service_goes_through_the_same_egress_as_the_endpoint(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "HTTPS_PROXY": "proxy.corp:3128",
        "NO_PROXY": "in.treasuredata.com",
        "FORWARDER_ENDPOINT__CA_FILE": str(ca),
    }
    config = _load(tmp_path, SERVICE, env)
    (service,) = config.personalization.services
    assert config.endpoint.proxy == ""  # NO_PROXY covers the ingest host...
    assert service.proxy == "http://proxy.corp:3128"  # ...not the personalization host
    assert service.ca_file == str(ca)


def test_a_service_can_set_its_own_proxy_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "cdp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    text = SERVICE + f"proxy = 'http://other:8080'\nca_file = '{ca}'\n"
    (service,) = _load(tmp_path, text, {"HTTPS_PROXY": "proxy.corp:3128"}).personalization.services
    assert (service.proxy, service.ca_file) == ("http://other:8080", str(ca))


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("proxy = 'socks://x'", "personalization.services[0].proxy"),
        ("ca_file = '/nonexistent/ca.pem'", "personalization.services[0].ca_file"),
    ],
)
def test_a_bad_proxy_or_ca_file_names_the_service_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, SERVICE + extra + "\n")
    assert caught.value.key == key
