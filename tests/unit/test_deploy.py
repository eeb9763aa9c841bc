"""The deployment files agree with the code: image, compose stack, Kubernetes manifests, alerts.

Nothing here runs a container (no Docker engine on these machines) or touches the network; the
files are parsed and checked against the config contract (``load_config``), the metrics the
code defines (``tests/metric_names.py``) and the Kubernetes schemas (``kubernetes-validate``,
offline). Custom resources (KEDA, Prometheus operator) are checked structurally.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from forwarder.config import Config, load_config
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN
from tests.markdown import anchors as markdown_anchors
from tests.metric_names import exposed_metric_names, promql_metric_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
# The Grafana dashboard's ConfigMap (test_dashboard.py), not part of the forwarder's own set.
DASHBOARD_MANIFEST = "grafana-dashboard.yaml"
# A version kubernetes-validate ships strict schemas for (v1.31.0-local-strict).
KUBERNETES_VERSION = "1.31.0"
# Partitions of the clickstream topic, stated in the ConfigMap's and the ScaledObject's labels
# and created by kafka-init in docker-compose.yml.
PARTITIONS = 6
PARTITIONS_LABEL = "forwarder/partitions"
CUSTOM_KINDS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}
# Secrets for loading a production config; the files themselves never hold any.
PROD_SECRETS = {"TD_API_KEY": "1/abcdefabcdef", "TD_WP13N_TOKEN": "1/1/token"}
SECRET_KEYS = ("api_key", "wp13n_token", "sasl_password")


# ---------------------------------------------------------------- readers


@functools.cache
def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _arg(command: list[str], option: str, default: str | None = None) -> str | None:
    """The value after ``option`` in an exec-form command, or ``default``."""
    return command[command.index(option) + 1] if option in command else default


def _volume(service: dict[str, Any], target_suffix: str) -> tuple[Path, str]:
    """(host path, container path) of the one bind mount whose target ends with the suffix."""
    (mount,) = [v for v in service["volumes"] if v.split(":")[1].endswith(target_suffix)]
    source, target = mount.split(":")[:2]
    return ROOT / source, target


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from the short ``[ip:]host:container[/proto]`` syntax."""
    ports = {}
    for spec in service.get("ports", []):
        *_, host, container = str(spec).split(":")
        ports[int(container.split("/")[0])] = int(host)
    return ports


def _seconds(duration: str) -> float:
    """A compose duration (``45s``, ``1m30s``) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _compose_forwarder_config() -> Config:
    service = _services()["forwarder"]
    host_path, _ = _volume(service, "forwarder.toml")
    env = {k: str(v) for k, v in service["environment"].items()}
    return load_config(host_path, env, need_secrets=True)


@functools.cache
def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _dockerfile_args(keyword: str) -> list[str]:
    return [args for kw, args in _dockerfile() if kw == keyword]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


@functools.cache
def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every manifest in deploy/kubernetes."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _manifests() -> dict[str, dict[str, Any]]:
    """The forwarder's Kubernetes documents by kind (one of each)."""
    docs: dict[str, dict[str, Any]] = {}
    for name, doc in _k8s_documents():
        if name == DASHBOARD_MANIFEST:
            continue
        assert doc["kind"] not in docs, f"two {doc['kind']} documents"
        docs[doc["kind"]] = doc
    return docs


def _is_built_in(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")


def _configmap_config(tmp_path: Path) -> Config:
    path = tmp_path / "forwarder.toml"
    path.write_text(_manifests()["ConfigMap"]["data"]["forwarder.toml"])
    return load_config(path, PROD_SECRETS, need_secrets=True)


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _manifests()["Deployment"]["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    (container,) = _pod_spec()["containers"]
    return dict(container)


def _alerts() -> list[dict[str, Any]]:
    groups = _manifests()["PrometheusRule"]["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# ---------------------------------------------------------------- docker-compose


def test_compose_has_every_service_of_the_local_stack() -> None:
    services = _services()
    stack = {"kafka", "kafka-init", "sandbox", "forwarder", "traffic", "prometheus", "grafana"}
    assert stack <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.0"
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    for name in ("sandbox", "forwarder", "traffic"):
        assert services[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert services["sandbox"]["command"][0] == "sandbox"
    assert services["traffic"]["command"][0] == "traffic"


def test_compose_kafka_is_a_single_kraft_node_with_a_health_check() -> None:
    kafka = _services()["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert set(env["KAFKA_LISTENERS"].split(",")) == {"PLAINTEXT://:9092", "CONTROLLER://:9093"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_compose_forwarder_config_loads_with_the_compose_environment() -> None:
    config = _compose_forwarder_config()
    assert config.endpoint.api_key and config.endpoint.wp13n_token


def test_compose_forwarder_publishes_its_ops_port() -> None:
    config = _compose_forwarder_config()
    assert _published(_services()["forwarder"]).get(config.ops.port) == config.ops.port


def test_compose_forwarder_uses_the_sandbox_development_credentials_and_profile() -> None:
    services = _services()
    env = services["forwarder"]["environment"]
    sandbox = services["sandbox"]["command"]
    assert env["TD_API_KEY"] == _arg(sandbox, "--api-key", DEV_API_KEY)
    assert env["TD_WP13N_TOKEN"] == _arg(sandbox, "--token", DEV_TOKEN)
    assert _compose_forwarder_config().endpoint.profile == _arg(sandbox, "--profile", "realtime")


def test_compose_forwarder_bootstrap_is_the_kafka_service_advertised_listener() -> None:
    config = _compose_forwarder_config()
    advertised = _services()["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {urlsplit(a).netloc for a in advertised.split(",") if a.startswith("PLAINTEXT://")}
    servers = config.kafka.bootstrap_servers.split(",")
    assert servers and all(s in addresses for s in servers), (servers, addresses)
    assert {s.rpartition(":")[0] for s in servers} == {"kafka"}


def test_compose_forwarder_endpoint_is_the_sandbox_service_and_port() -> None:
    config = _compose_forwarder_config()
    url = urlsplit(config.endpoint.base_url)
    assert url.scheme == "http" and url.hostname == "sandbox"
    sandbox = _services()["sandbox"]["command"]
    assert _arg(sandbox, "--port") == str(url.port)
    assert _arg(sandbox, "--host") == "0.0.0.0"


def test_compose_traffic_topic_is_consumed_and_created_by_kafka_init() -> None:
    config = _compose_forwarder_config()
    services = _services()
    traffic = services["traffic"]["command"]
    assert _arg(traffic, "--topic") in config.kafka.topics
    assert _arg(traffic, "--bootstrap-servers") == config.kafka.bootstrap_servers
    init = services["kafka-init"]
    command = [*init.get("entrypoint", []), *init["command"]]
    assert command[0] == "/opt/kafka/bin/kafka-topics.sh"
    assert "--create" in command
    assert _arg(command, "--topic") == _arg(traffic, "--topic")
    assert _arg(command, "--partitions") == str(PARTITIONS)
    assert _arg(command, "--bootstrap-server") == config.kafka.bootstrap_servers


def test_compose_start_order_waits_for_kafka_the_topic_and_the_sandbox() -> None:
    services = _services()
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    forwarder = services["forwarder"]["depends_on"]
    assert forwarder["kafka-init"]["condition"] == "service_completed_successfully"
    assert "sandbox" in forwarder
    traffic = services["traffic"]["depends_on"]
    assert traffic["kafka-init"]["condition"] == "service_completed_successfully"


def test_compose_stop_grace_period_exceeds_the_drain_timeout() -> None:
    config = _compose_forwarder_config()
    grace = _seconds(_services()["forwarder"]["stop_grace_period"])
    assert grace > config.ops.shutdown_timeout_s


def test_compose_forwarder_config_is_mounted_where_the_image_reads_it() -> None:
    _, target = _volume(_services()["forwarder"], "forwarder.toml")
    (cmd,) = _dockerfile_args("CMD")
    assert _arg(json.loads(cmd), "--config") == target
    assert _services()["forwarder"].get("command") is None  # the image's CMD is used


def test_compose_services_without_the_ops_port_disable_the_image_health_check() -> None:
    # The image's HEALTHCHECK probes the ops port, which only `forwarder run` serves.
    for name, service in _services().items():
        if "build" in service and service.get("command", ["run"])[0] != "run":
            assert service["healthcheck"] == {"disable": True}, name


def test_compose_prometheus_scrapes_the_forwarder_ops_port() -> None:
    config = _compose_forwarder_config()
    host_path, target = _volume(_services()["prometheus"], "prometheus.yml")
    assert target == "/etc/prometheus/prometheus.yml"
    scrape = yaml.safe_load(host_path.read_text())
    targets = [
        t for job in scrape["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert f"forwarder:{config.ops.port}" in targets


def test_compose_grafana_is_pinned_and_published_on_loopback_only() -> None:
    grafana = _services()["grafana"]
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", grafana["image"]), grafana["image"]
    # Anonymous viewers are let in: the port must not reach the network.
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["ports"] and all(str(p).startswith("127.0.0.1:") for p in grafana["ports"])
    assert 3000 in _published(grafana)


def test_compose_grafana_mounts_existing_files_read_only() -> None:
    for mount in _services()["grafana"]["volumes"]:
        source, _, mode = mount.split(":")
        assert mode == "ro", mount
        assert (ROOT / source).exists(), mount


def test_compose_grafana_datasource_is_the_compose_prometheus() -> None:
    host_dir, target = _volume(_services()["grafana"], "provisioning/datasources")
    assert target == "/etc/grafana/provisioning/datasources"
    (path,) = sorted(host_dir.glob("*.yaml"))
    (source,) = yaml.safe_load(path.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.port in _published(_services()["prometheus"])
    # $__rate_interval is four of these: it must be Prometheus' real scrape interval.
    scrape_path, _ = _volume(_services()["prometheus"], "prometheus.yml")
    scrape = yaml.safe_load(scrape_path.read_text())
    assert source["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_compose_grafana_provisions_the_dashboard_and_opens_it_first() -> None:
    grafana = _services()["grafana"]
    host_dir, target = _volume(grafana, "provisioning/dashboards")
    assert target == "/etc/grafana/provisioning/dashboards"
    (path,) = sorted(host_dir.glob("*.yaml"))
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["type"] == "file"
    dashboard, mounted = _volume(grafana, ".json")
    assert dashboard == DEPLOY / "grafana" / "forwarder.json"
    assert str(Path(mounted).parent) == provider["options"]["path"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == mounted


# ---------------------------------------------------------------- image


def test_dockerfile_is_a_multi_stage_slim_build_running_as_uid_10001() -> None:
    froms = _dockerfile_args("FROM")
    assert len(froms) >= 2
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)
    assert re.search(r"\bAS build\b", froms[0], re.IGNORECASE)
    assert any("pip wheel" in run for run in _dockerfile_args("RUN"))
    final = _final_stage()
    assert any(kw == "COPY" and args.startswith("--from=build ") for kw, args in final)
    (user,) = [args for kw, args in final if kw == "USER"]
    assert user.split(":")[0] == "10001"


def test_image_installs_jemalloc_and_preloads_it_as_malloc_for_python_objects_too() -> None:
    final = _final_stage()
    installs = [
        i
        for i, (kw, args) in enumerate(final)
        if kw == "RUN" and re.search(r"apt-get install .*\blibjemalloc2\b", args)
    ]
    preloads = [
        i
        for i, (kw, args) in enumerate(final)
        if kw == "ENV"
        and {"LD_PRELOAD=libjemalloc.so.2", "PYTHONMALLOC=malloc"} <= set(args.split())
    ]
    assert installs and preloads
    # Preloaded before it is installed, every process of the build step would warn that it
    # cannot be loaded.
    assert installs[0] < preloads[0]


def test_dockerfile_copies_what_the_wheel_build_needs() -> None:
    copied = {
        src
        for args in _dockerfile_args("COPY")
        if not args.startswith("--from=")
        for src in shlex.split(args)[:-1]
    }
    # pyproject names README.md as the readme and force-includes schemas into the wheel.
    assert {"pyproject.toml", "README.md", "forwarder", "schemas"} <= copied
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force_included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert set(force_included) <= copied


def test_dockerfile_entrypoint_command_port_and_health_check_match_the_ops_config() -> None:
    config = load_config(DEPLOY / "forwarder.toml", PROD_SECRETS, need_secrets=True)
    (entrypoint,) = _dockerfile_args("ENTRYPOINT")
    (cmd,) = _dockerfile_args("CMD")
    assert json.loads(entrypoint) == ["forwarder"]
    assert json.loads(cmd) == ["run", "--config", "/etc/forwarder/forwarder.toml"]
    assert _dockerfile_args("EXPOSE") == [str(config.ops.port)]
    (healthcheck,) = _dockerfile_args("HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert f"http://127.0.0.1:{config.ops.port}/healthz" in healthcheck


def test_dockerignore_excludes_local_state_but_not_the_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip().rstrip("/") for p in lines if p.strip() and not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")]  # the matcher below has no exceptions
    assert {".venv", ".git", "bench/results"} <= set(patterns)
    assert any("__pycache__" in p for p in patterns)
    sources = [
        src
        for args in _dockerfile_args("COPY")
        if not args.startswith("--from=")
        for src in shlex.split(args)[:-1]
    ]
    for source in sources:
        parts = Path(source).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        ignored = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p)]
        assert not ignored, f"{source} is copied by the Dockerfile but excluded by {ignored}"
        assert (ROOT / source).exists(), source


@pytest.mark.parametrize(
    "path", ["deploy/forwarder.toml", "deploy/compose/forwarder.toml"], ids=["image", "compose"]
)
def test_example_config_holds_no_secret(path: str) -> None:
    raw = tomllib.loads((ROOT / path).read_text())
    keys = {key for section in raw.values() if isinstance(section, dict) for key in section}
    assert not keys & set(SECRET_KEYS)


def test_image_example_config_is_valid_for_production() -> None:
    config = load_config(DEPLOY / "forwarder.toml", PROD_SECRETS, need_secrets=True)
    assert config.endpoint.base_url.startswith("https://")
    assert config.ops.log_format == "json"


# ---------------------------------------------------------------- Kubernetes


BUILT_IN_DOCS = [(name, doc) for name, doc in _k8s_documents() if _is_built_in(doc["apiVersion"])]


def test_every_manifest_is_built_in_or_a_known_custom_resource() -> None:
    kinds = list(_manifests())  # one of each kind, or _manifests() fails
    for name, doc in _k8s_documents():
        if not _is_built_in(doc["apiVersion"]):
            assert CUSTOM_KINDS.get(doc["kind"]) == doc["apiVersion"], name
    assert set(CUSTOM_KINDS) <= set(kinds)
    assert {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)


@pytest.mark.parametrize(
    "doc", [doc for _, doc in BUILT_IN_DOCS], ids=[name for name, _ in BUILT_IN_DOCS]
)
def test_built_in_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught_by_the_validator() -> None:
    broken = copy.deepcopy(_manifests()["Deployment"])
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    unknown_field = copy.deepcopy(_manifests()["Deployment"])
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, KUBERNETES_VERSION, strict=True)


def test_configmap_holds_a_valid_forwarder_toml(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    assert config.endpoint.base_url.startswith("https://")
    raw = tomllib.loads(_manifests()["ConfigMap"]["data"]["forwarder.toml"])
    assert not {k for s in raw.values() if isinstance(s, dict) for k in s} & set(SECRET_KEYS)


def test_deployment_grace_period_exceeds_the_drain_timeout(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    assert _pod_spec()["terminationGracePeriodSeconds"] > config.ops.shutdown_timeout_s


def test_deployment_probes_use_readyz_and_healthz_on_the_ops_port(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["ops"] == config.ops.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}


def test_deployment_sets_cpu_and_memory_requests_and_limits() -> None:
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind


def test_deployment_security_context_is_restricted() -> None:
    pod = _pod_spec()["securityContext"]
    container = _container()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["runAsNonRoot"] is True
    assert container.get("runAsUser", 10001) == 10001
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container.get("seccompProfile", pod["seccompProfile"]) == {"type": "RuntimeDefault"}
    assert not container.get("privileged", False)


def test_deployment_mounts_the_configmap_and_the_secret_files_it_names() -> None:
    container = _container()
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_volume = volumes["config"]["configMap"]["name"]
    assert config_volume == _manifests()["ConfigMap"]["metadata"]["name"]
    (cmd,) = _dockerfile_args("CMD")
    assert container["args"] == json.loads(cmd)
    assert _arg(container["args"], "--config") == f"{mounts['config']}/forwarder.toml"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "TD_API_KEY" not in env and "TD_WP13N_TOKEN" not in env
    assert volumes["secrets"]["secret"]["secretName"] == _manifests()["Secret"]["metadata"]["name"]
    for name in ("TD_API_KEY_FILE", "TD_WP13N_TOKEN_FILE"):
        assert Path(env[name]).parent == Path(mounts["secrets"]), name


def test_secret_template_holds_only_placeholders() -> None:
    secret = _manifests()["Secret"]
    assert "data" not in secret  # base64 would hide a real value
    values = secret["stringData"]
    assert values and all(v == "REPLACE_ME" for v in values.values()), values
    names = {Path(e["value"]).name for e in _container()["env"] if e["name"].endswith("_FILE")}
    assert names == set(values)


def test_service_pdb_and_deployment_select_the_same_pods(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    manifests = _manifests()
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = manifests["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert manifests["Service"]["spec"]["selector"].items() <= pod_labels.items()
    pdb = manifests["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["maxUnavailable"] == 1
    (port,) = manifests["Service"]["spec"]["ports"]
    assert port["name"] == "ops" and port["targetPort"] == "ops"
    assert port["port"] == config.ops.port


def test_keda_scales_the_deployment_on_group_lag_up_to_the_partition_count(
    tmp_path: Path,
) -> None:
    config = _configmap_config(tmp_path)
    manifests = _manifests()
    scaled = manifests["ScaledObject"]
    partitions = int(manifests["ConfigMap"]["metadata"]["labels"][PARTITIONS_LABEL])
    assert partitions == int(scaled["metadata"]["labels"][PARTITIONS_LABEL]) == PARTITIONS
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert spec["minReplicaCount"] == 1
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == config.kafka.group_id
    assert metadata["topic"] in config.kafka.topics
    assert metadata["bootstrapServers"] == config.kafka.bootstrap_servers
    assert int(metadata["lagThreshold"]) > 0
    assert metadata.get("offsetResetPolicy", "latest") == config.kafka.auto_offset_reset
    assert "replicas" not in manifests["Deployment"]["spec"]  # KEDA owns the count


def test_service_monitor_scrapes_metrics_on_the_service_ops_port() -> None:
    monitor = _manifests()["ServiceMonitor"]
    service = _manifests()["Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


# ---------------------------------------------------------------- alerts


def test_promql_metric_names_are_the_selected_metrics_only() -> None:
    expr = (
        'sum by (reason) (increase(a_total{job="x", b=~"c|d"}[15m] offset 1h)) > on (reason) '
        "group_left (tier) max by (reason, tier) (b_count) and absent(up == 1) unless c:rate5m "
        'or {__name__="d_sum"}'
    )
    assert promql_metric_names(expr) == {"a_total", "b_count", "up", "c:rate5m", "d_sum"}


def test_promql_metric_names_refuse_what_is_not_promql() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_metric_names("sum(rate(a_total[5m])")
    with pytest.raises(ValueError, match="__name__"):
        promql_metric_names('{__name__=~"a_.*"}')


def test_exposed_metric_names_carry_the_exposition_suffixes() -> None:
    names = exposed_metric_names()
    assert "forwarder_events_dead_lettered_total" in names
    assert "forwarder_events_dead_lettered" not in names
    assert "forwarder_http_request_duration_seconds_bucket" in names
    assert "forwarder_paused" in names
    assert "forwarder_oldest_uncommitted_record_age_seconds" in names


def test_prometheus_rule_alerts_are_complete_and_well_formed() -> None:
    rule = _manifests()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
    alerts = _alerts()
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names)), names
    for alert in alerts:
        assert alert["expr"].strip(), alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])


@pytest.mark.parametrize(
    ("alert", "metric"),
    [
        ("ForwarderPaused", "forwarder_paused"),
        ("ForwarderEndpointDown", "forwarder_endpoint_state"),
        ("ForwarderDestinationDegraded", "forwarder_destination_state"),
        ("ForwarderDestinationNotFound", "forwarder_events_dead_lettered_total"),
        ("ForwarderPublishFailing", "forwarder_publish_failures_total"),
        ("ForwarderSchemaRegistryUnavailable", "forwarder_registry_waiting_partitions"),
        ("ForwarderDeadLetterGrowth", "forwarder_events_dead_lettered_total"),
        ("ForwarderLagAgeHigh", "forwarder_oldest_uncommitted_record_age_seconds"),
        ("ForwarderRetryRateHigh", "forwarder_events_retried_total"),
        ("ForwarderDown", "up"),
        ("ForwarderPersonalizationMisconfigured", "forwarder_personalization_misconfigured"),
        (
            "ForwarderPersonalizationFallbackRateHigh",
            "forwarder_personalization_fallbacks_total",
        ),
    ],
)
def test_alert_exists_and_watches_its_metric(alert: str, metric: str) -> None:
    (rule,) = [a for a in _alerts() if a["alert"] == alert]
    assert metric in promql_metric_names(rule["expr"])


def test_every_alert_uses_only_metrics_the_code_exposes() -> None:
    exposed = exposed_metric_names() | {"up"}
    for alert in _alerts():
        used = promql_metric_names(alert["expr"])
        assert used, alert["alert"]
        assert used <= exposed, f"{alert['alert']} uses {used - exposed}"


def test_every_alert_links_its_runbook_entry() -> None:
    anchors = markdown_anchors(ROOT / "docs/operations.md")
    for alert in _alerts():
        url = urlsplit(alert["annotations"]["runbook_url"])
        assert url.scheme == "https" and url.path.endswith("/docs/operations.md"), alert["alert"]
        assert url.fragment == alert["alert"].lower(), alert["alert"]
        assert url.fragment in anchors, f"docs/operations.md has no heading for #{url.fragment}"
