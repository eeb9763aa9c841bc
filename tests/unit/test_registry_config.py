"""The ``[registry]`` section: its keys, its secret, its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder.config import load_config, redacted
from forwarder.engine.service import secrets_of
from forwarder.errors import ConfigError

SECRETS = {"TD_API_KEY": "1/abc", "TD_WP13N_TOKEN": "1/1/t"}
CLOUD = "https://psrc-abc12.eu-west-1.aws.confluent.cloud"


def test_no_registry_by_default() -> None:
    registry = load_config(None, SECRETS).registry
    assert registry.url == "" and not registry.local_schemas
    assert registry.timeout_s == 5.0 and registry.backoff_max_s == 10.0


def test_confluent_cloud_with_the_key_in_the_file_and_the_secret_from_a_file(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "registry-secret"
    secret.write_text("s3cr3t-value\n")
    config_file = tmp_path / "forwarder.toml"
    config_file.write_text(f'[registry]\nurl = "{CLOUD}"\nusername = "ABCDEFKEY"\n')
    env = {**SECRETS, "FORWARDER_REGISTRY__PASSWORD_FILE": str(secret)}
    config = load_config(config_file, env)
    assert config.registry.username == "ABCDEFKEY"
    assert config.registry.password.reveal() == "s3cr3t-value"
    assert redacted(config)["registry"]["password"] == "***"
    assert "s3cr3t-value" in secrets_of(config)  # redacted from every log line


def test_environment_overrides_and_the_proxy_rules_of_the_endpoint() -> None:
    env = {
        **SECRETS,
        "FORWARDER_REGISTRY__URL": "https://registry.internal:8081",
        "FORWARDER_REGISTRY__LOCAL_SCHEMAS": "true",
        "HTTPS_PROXY": "proxy.internal:3128",
    }
    config = load_config(None, env)
    assert config.registry.local_schemas
    assert config.registry.proxy == "http://proxy.internal:3128"
    bypassed = load_config(None, {**env, "NO_PROXY": ".internal"})
    assert bypassed.registry.proxy == ""


@pytest.mark.parametrize(
    ("toml", "env", "key", "fix"),
    [
        ('[registry]\npassword = "x"\n', {}, "registry.password", "FORWARDER_REGISTRY__PASSWORD"),
        ('[registry]\npassword_file = "/x"\n', {}, "registry.password_file", "_FILE"),
        ('[registry]\nurl = "ftp://r"\n', {}, "registry.url", "http(s)"),
        (
            '[registry]\nurl = "http://registry.internal"\nusername = "u"\n',
            {"FORWARDER_REGISTRY__PASSWORD": "p"},
            "registry.url",
            "https://",
        ),
        ('[registry]\nurl = "https://r"\nusername = "u"\n', {}, "registry.username", "PASSWORD"),
        ('[registry]\nusername = "u"\n', {}, "registry.username", "registry.url"),
        ('[registry]\nurl = "https://r"\ntimeout_s = 0\n', {}, "registry.timeout_s", "above 0"),
        ('[registry]\nurl = "https://r"\nca_file = "/nope.pem"\n', {}, "registry.ca_file", "PEM"),
        ('[registry]\nurll = "https://r"\n', {}, "registry.urll", "did you mean 'url'"),
    ],
)
def test_bad_registry_settings_name_the_key_and_the_fix(
    tmp_path: Path, toml: str, env: dict[str, str], key: str, fix: str
) -> None:
    config_file = tmp_path / "forwarder.toml"
    config_file.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, {**SECRETS, **env})
    assert caught.value.key == key
    assert fix in str(caught.value)


def test_plain_http_without_credentials_is_allowed_for_a_private_registry() -> None:
    env = {**SECRETS, "FORWARDER_REGISTRY__URL": "http://schema-registry:8081"}
    assert load_config(None, env).registry.url == "http://schema-registry:8081"
