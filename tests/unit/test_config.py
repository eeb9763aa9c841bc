from pathlib import Path

import pytest

from forwarder.config import Secret, load_config, redacted
from forwarder.errors import ConfigError

SECRETS = {"TD_API_KEY": "1/abcdef0123456789", "TD_WP13N_TOKEN": "1/2/tok"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forwarder.toml"
    path.write_text(text)
    return path


def test_retry_after_cap_defaults_to_five_minutes() -> None:
    assert load_config(None, dict(SECRETS)).retry.max_retry_after_s == 300
    env = {**SECRETS, "FORWARDER_RETRY__MAX_RETRY_AFTER_S": "60"}
    assert load_config(None, env).retry.max_retry_after_s == 60


def test_max_in_flight_is_a_number_or_adaptive_from_the_file_or_the_environment(
    tmp_path: Path,
) -> None:
    config = load_config(None, SECRETS)
    assert (config.limits.max_in_flight, config.limits.in_flight_ceiling) == (8, 8)
    env = {**SECRETS, "FORWARDER_LIMITS__MAX_IN_FLIGHT": "adaptive"}
    config = load_config(None, env)
    assert config.limits.adaptive and config.limits.in_flight_ceiling == 64
    path = _write(tmp_path, '[limits]\nmax_in_flight = "adaptive"\nadaptive_max = 20\n')
    config = load_config(path, SECRETS)
    assert config.limits.adaptive and config.limits.in_flight_ceiling == 20
    env = {**SECRETS, "FORWARDER_LIMITS__MAX_IN_FLIGHT": "12"}
    assert load_config(path, env).limits.max_in_flight == 12


def test_defaults_with_secrets_from_environment() -> None:
    config = load_config(None, SECRETS)
    assert config.kafka.topics == ("clickstream",)
    assert config.endpoint.base_url == "https://us01.p13n.in.treasuredata.com"
    assert config.endpoint.api_key.reveal() == "1/abcdef0123456789"
    assert config.destination_for("page_view") == "clickstream.page_view"


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[kafka]\ntopics = ["a", "b"]\n[batch]\nlinger_ms = 50\n[routes]\npurchase = "sales.orders"\n',
    )
    env = {**SECRETS, "FORWARDER_BATCH__LINGER_MS": "75", "FORWARDER_KAFKA__TOPICS": "x,y"}
    config = load_config(path, env)
    assert config.batch.linger_ms == 75
    assert config.kafka.topics == ("x", "y")
    assert config.destination_for("purchase") == "sales.orders"


def test_secret_files_are_read(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("9/secretvalue\n")
    config = load_config(None, {"TD_API_KEY_FILE": str(key), "TD_WP13N_TOKEN": "9/1/t"})
    assert config.endpoint.api_key.reveal() == "9/secretvalue"


@pytest.mark.parametrize(
    ("text", "env", "key", "fix"),
    [
        (
            "[kafka]\nbootstrap_server = 'x'\n",
            {},
            "kafka.bootstrap_server",
            "did you mean 'bootstrap_servers'",
        ),
        ("[kafak]\n", {}, "kafak", "did you mean 'kafka'"),
        ("[batch]\nmax_events = 501\n", {}, "batch.max_events", "1 to 500"),
        ("[batch]\nmax_events = 'ten'\n", {}, "batch.max_events", ""),
        ("", {"FORWARDER_LIMITS__MAX_IN_FLIGHT": "many"}, "limits.max_in_flight", "'adaptive'"),
        ("[limits]\nmax_in_flight = 'adaptiv'\n", {}, "limits.max_in_flight", "'adaptive'"),
        ("[limits]\nmax_in_flight = 0\n", {}, "limits.max_in_flight", '"adaptive"'),
        ("[limits]\nadaptive_max = 0\n", {}, "limits.adaptive_max", "1 to 1024"),
        ("[endpoint]\nurl = 'http://example.com'\n", {}, "endpoint.url", "https"),
        ("[endpoint]\nprofile = 'realtime'\nregion = 'ap02'\n", {}, "endpoint.region", "us01"),
        ("[endpoint]\napi_key = 'x'\n", {}, "endpoint.api_key", "TD_API_KEY"),
        ("[routes]\npage_view = 'nodot'\n", {}, "routes.page_view", "a-z"),
        ("[kafka]\nsecurity_protocol = 'SASL_SSL'\n", {}, "kafka.sasl_mechanism", "sasl_username"),
        (
            "[kafka]\nsasl_password = 'hunter2'\n",
            {},
            "kafka.sasl_password",
            "FORWARDER_KAFKA__SASL_PASSWORD or FORWARDER_KAFKA__SASL_PASSWORD_FILE",
        ),
        ("[kafka]\nssl_key_password = 'k'\n", {}, "kafka.ssl_key_password", "_FILE"),
        ("[kafka]\noauth_client_secret = 'c'\n", {}, "kafka.oauth_client_secret", "_FILE"),
        (
            "[kafka]\nsecurity_protocol = 'SASL_SSL'\nsasl_mechanism = 'OAUTHBEARER'\n",
            {},
            "kafka.oauth_token_file",
            "oauth_token_url",
        ),
        (
            "[kafka]\nsecurity_protocol = 'SASL_SSL'\nsasl_mechanism = 'OAUTHBEARER'\n"
            "oauth_token_url = 'http://idp.example/token'\noauth_client_id = 'c'\n",
            {"FORWARDER_KAFKA__OAUTH_CLIENT_SECRET": "s"},
            "kafka.oauth_token_url",
            "https",
        ),
        (
            "[kafka]\nsecurity_protocol = 'SASL_SSL'\nsasl_mechanism = 'OAUTHBEARER'\n"
            "oauth_token_url = 'https://idp.example/token'\n",
            {},
            "kafka.oauth_client_id",
            "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET",
        ),
        ("[kafka]\nssl_cafile = '/nonexistent.pem'\n", {}, "kafka.ssl_cafile", "SSL"),
        (
            "[kafka]\nsecurity_protocol = 'SSL'\nssl_certfile = '/nonexistent.pem'\n",
            {},
            "kafka.ssl_certfile",
            "readable",
        ),
        ("[endpoint]\nca_file = '/nonexistent.pem'\n", {}, "endpoint.ca_file", "readable"),
        ("[endpoint]\nproxy = 'proxy:3128'\n", {}, "endpoint.proxy", "http://"),
        # The revoke drain and its commit must fit in the rebalance timeout (issue 12 item 3).
        (
            "[kafka]\nrebalance_timeout_ms = 30000\nrevoke_drain_ms = 28000\n",
            {},
            "kafka.revoke_drain_ms",
            "lower revoke_drain_ms to 25000 or less, or raise rebalance_timeout_ms to 33000",
        ),
        ("[kafka]\nrebalance_timeout_ms = 5000\n", {}, "kafka.rebalance_timeout_ms", "10000"),
        ("[kafka]\nrevoke_drain_ms = 0\n", {}, "kafka.revoke_drain_ms", "above 0"),
        ("[kafka]\nmax_pending_bytes = 1000\n", {}, "kafka.max_pending_bytes", "4000000"),
        ("[retry]\nmax_retry_after_s = 0\n", {}, "retry.max_retry_after_s", "1 to 3600"),
        ("[retry]\nmax_retry_after_s = 86400\n", {}, "retry.max_retry_after_s", "1 to 3600"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(
    tmp_path: Path, text: str, env: dict[str, str], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), {**SECRETS, **env})
    assert info.value.key == key
    assert key in str(info.value)
    assert fix in str(info.value)


def test_missing_secret_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="TD_API_KEY"):
        load_config(None, {})
    with pytest.raises(ConfigError, match="TD_WP13N_TOKEN"):
        load_config(None, {"TD_API_KEY": "1/abc"})
    assert load_config(None, {"TD_API_KEY": "1/abc", "FORWARDER_ENDPOINT__PROFILE": "ingest"})


def test_loopback_http_is_allowed_for_the_sandbox() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"):
        assert (
            load_config(None, {**SECRETS, "FORWARDER_ENDPOINT__URL": url}).endpoint.base_url == url
        )


def test_plain_http_to_a_remote_host_needs_the_explicit_opt_in() -> None:
    remote = {**SECRETS, "FORWARDER_ENDPOINT__URL": "http://sandbox:8080"}
    with pytest.raises(ConfigError, match="allow_plain_http") as info:
        load_config(None, remote)
    assert info.value.key == "endpoint.url"
    opted_in = load_config(None, {**remote, "FORWARDER_ENDPOINT__ALLOW_PLAIN_HTTP": "true"})
    assert opted_in.endpoint.base_url == "http://sandbox:8080"


def test_kafka_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file\n")
    config = load_config(
        None,
        {
            **SECRETS,
            "FORWARDER_KAFKA__SASL_PASSWORD": "from-env",
            "FORWARDER_KAFKA__SSL_KEY_PASSWORD": "key-pass",
            "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET_FILE": str(secret),
        },
    )
    assert config.kafka.sasl_password.reveal() == "from-env"
    assert config.kafka.ssl_key_password.reveal() == "key-pass"
    assert config.kafka.oauth_client_secret.reveal() == "from-a-file"
    with pytest.raises(ConfigError, match="FORWARDER_KAFKA__SASL_PASSWORD_FILE"):
        load_config(None, {**SECRETS, "FORWARDER_KAFKA__SASL_PASSWORD_FILE": str(tmp_path / "x")})


def test_redacted_view_hides_secrets() -> None:
    config = load_config(
        None,
        {
            **SECRETS,
            "FORWARDER_KAFKA__SASL_PASSWORD": "hunter2hunter2",
            "FORWARDER_KAFKA__SSL_KEY_PASSWORD": "keypass",
            "FORWARDER_KAFKA__OAUTH_CLIENT_SECRET": "clientsecret",
        },
    )
    shown = redacted(config)
    assert shown["endpoint"]["api_key"] == "***"
    assert shown["kafka"]["sasl_password"] == "***"
    assert shown["kafka"]["ssl_key_password"] == "***"
    assert shown["kafka"]["oauth_client_secret"] == "***"
    assert "keypass" not in repr(config)
    assert "clientsecret" not in repr(config)
    assert "abcdef0123456789" not in repr(config)
    assert "hunter2" not in repr(config)
    assert str(Secret("s3cret")) == "Secret('***')"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", SECRETS)


def test_policy_section_overrides_actions(tmp_path: Path) -> None:
    from forwarder.core.classify import Action, Policy

    path = _write(
        tmp_path, '[policy]\n"400:3001" = "dead-letter"\n"500" = "pause"\ntransport = "retry"\n'
    )
    config = load_config(path, SECRETS)
    policy = Policy.from_config(config.policy)
    assert policy.action_for(400, 3001) is Action.DEAD_LETTER
    assert policy.action_for(500, 1003) is Action.PAUSE
    assert policy.action_for(400, 3002) is Action.PAUSE


@pytest.mark.parametrize(
    ("line", "fix"), [('"abc" = "retry"', "status"), ('"500" = "explode"', "dead-letter")]
)
def test_bad_policy_rows_name_the_key(tmp_path: Path, line: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        load_config(_write(tmp_path, f"[policy]\n{line}\n"), SECRETS)


@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        ({"HTTPS_PROXY": "http://egress:3128"}, "http://egress:3128"),
        ({"https_proxy": "egress:3128"}, "http://egress:3128"),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": ".treasuredata.com"}, ""),
        ({"HTTPS_PROXY": "http://egress:3128", "no_proxy": "localhost,*"}, ""),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "data.com"}, "http://egress:3128"),
        ({"HTTP_PROXY": "http://egress:3128"}, ""),  # the endpoint is https
        (
            {"HTTPS_PROXY": "http://egress:3128", "FORWARDER_ENDPOINT__PROXY": "http://mine:8080"},
            "http://mine:8080",
        ),
    ],
)
def test_endpoint_proxy_follows_https_proxy_and_no_proxy(env: dict[str, str], proxy: str) -> None:
    assert load_config(None, {**SECRETS, **env}).endpoint.proxy == proxy


def test_every_mistake_is_reported_at_once_each_with_its_key_and_fix(tmp_path: Path) -> None:
    # The example: three mistakes in three sections, found by three different stages
    # (a range, a cross-field rule, a type), plus one from the environment.
    path = _write(
        tmp_path,
        "[kafka]\nmax_pending_per_partition = -5\n"
        '[endpoint]\nregion = "us02"\n'
        '[limits]\nmax_in_flight = "lots"\n',
    )
    env = {**SECRETS, "FORWARDER_BATCH__MAX_EVENTS": "ten"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    found = {p.key: str(p) for p in info.value.problems}
    assert sorted(found) == [
        "batch.max_events",
        "endpoint.region",
        "kafka.max_pending_per_partition",
        "limits.max_in_flight",
    ]
    assert "use a number above 0" in found["kafka.max_pending_per_partition"]
    assert "use one of us01, eu01, ap01" in found["endpoint.region"]
    assert "use an integer or 'adaptive'" in found["limits.max_in_flight"]
    assert "FORWARDER_BATCH__MAX_EVENTS" in found["batch.max_events"]
    lines = str(info.value).splitlines()
    assert lines[0] == "4 problems in the configuration:"
    assert sorted(line.strip() for line in lines[1:]) == sorted(found.values())


def test_a_secret_in_the_file_or_an_unreadable_secret_file_is_named_once(
    tmp_path: Path,
) -> None:
    text = "[batch]\nlinger_ms = -1\n[kafka]\nsasl_password = 'hunter2'\n"
    env = {"TD_API_KEY_FILE": str(tmp_path / "missing"), "TD_WP13N_TOKEN": "1/2/t"}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), env)
    # Not also "TD_API_KEY: the API key is missing": the file that should hold it is named.
    assert sorted(p.key for p in info.value.problems) == [
        "TD_API_KEY_FILE",
        "batch.linger_ms",
        "kafka.sasl_password",
    ]
    assert "hunter2" not in str(info.value)


def test_one_problem_reads_as_before() -> None:
    error = ConfigError("batch.linger_ms", "must not be negative", "use 0 or more")
    assert str(error) == "config key 'batch.linger_ms': must not be negative (use 0 or more)"
    assert [p.key for p in error.problems] == ["batch.linger_ms"]
