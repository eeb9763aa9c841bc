"""The deployment files agree with the code: compose stack, Kubernetes manifests, alert rules.

Nothing here runs a container (no Docker engine on these machines); the files are parsed and
checked against the config contract, the metrics the code defines and the Kubernetes schemas
(``kubernetes-validate``, offline). Custom resources are checked structurally.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from forwarder.config import Config, load_config
from forwarder.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.31.0"
PARTITIONS = 6  # of the clickstream topic the manifests are written for


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes document, by kind."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in docs, f"two {doc['kind']} documents"
            docs[doc["kind"]] = doc
    return docs


def _configmap_config(tmp_path: Path) -> Config:
    text = _manifests()["ConfigMap"]["data"]["forwarder.toml"]
    path = tmp_path / "forwarder.toml"
    path.write_text(text)
    return load_config(path, {"TD_API_KEY": "1/abcdefabcdef", "TD_WP13N_TOKEN": "1/1/t"})


def _compose_forwarder_config() -> tuple[Config, dict[str, Any]]:
    service = _compose()["services"]["forwarder"]
    (mount,) = [v for v in service["volumes"] if v.split(":")[1].endswith("forwarder.toml")]
    host_path = ROOT / mount.split(":")[0]
    env = {k: str(v) for k, v in service["environment"].items()}
    return load_config(host_path, env), service


# ---------------------------------------------------------------- docker-compose


def test_compose_has_every_service_of_the_local_stack() -> None:
    services = _compose()["services"]
    assert {"kafka", "sandbox", "forwarder", "traffic", "prometheus"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("sandbox", "forwarder", "traffic"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_compose_forwarder_config_loads_with_the_compose_environment() -> None:
    config, service = _compose_forwarder_config()
    assert config.endpoint.api_key and config.endpoint.wp13n_token
    published = {p.split(":")[1] for p in service["ports"]}
    assert str(config.ops.port) in published


def test_compose_forwarder_reaches_kafka_and_the_sandbox_by_service_name() -> None:
    config, _ = _compose_forwarder_config()
    services = _compose()["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{config.kafka.bootstrap_servers}" in advertised.split(",")
    url = urlsplit(config.endpoint.base_url)
    assert url.hostname == "sandbox"
    sandbox_command = services["sandbox"]["command"]
    assert sandbox_command[0] == "sandbox"
    assert sandbox_command[sandbox_command.index("--port") + 1] == str(url.port)
    assert sandbox_command[sandbox_command.index("--host") + 1] == "0.0.0.0"


def test_compose_traffic_and_topic_creation_match_the_consumed_topic() -> None:
    config, _ = _compose_forwarder_config()
    services = _compose()["services"]
    traffic = services["traffic"]["command"]
    assert traffic[0] == "traffic"
    assert traffic[traffic.index("--topic") + 1] in config.kafka.topics
    assert traffic[traffic.index("--bootstrap-servers") + 1] == config.kafka.bootstrap_servers
    init = services["kafka-init"]["command"]
    assert init[init.index("--topic") + 1] in config.kafka.topics


def test_compose_prometheus_scrapes_the_forwarder_ops_port() -> None:
    config, _ = _compose_forwarder_config()
    mount = _compose()["services"]["prometheus"]["volumes"][0]
    scrape = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    targets = [
        t for job in scrape["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert f"forwarder:{config.ops.port}" in targets


def test_image_default_config_is_valid() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile
    assert 'ENTRYPOINT ["forwarder"]' in dockerfile
    assert "/etc/forwarder/forwarder.toml" in dockerfile
    load_config(
        ROOT / "deploy" / "forwarder.toml", {"TD_API_KEY": "1/abcdefabc", "TD_WP13N_TOKEN": "1/1/t"}
    )


# ---------------------------------------------------------------- Kubernetes


BUILT_IN = ("ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget")


@pytest.mark.parametrize("kind", BUILT_IN)
def test_built_in_manifest_validates_against_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(_manifests()[kind], KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught_by_the_validator() -> None:
    broken = dict(_manifests()["Deployment"])
    broken["spec"] = {**broken["spec"], "replicas": "two"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_configmap_holds_a_valid_forwarder_toml(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    assert config.ops.port == 9108


def test_deployment_probes_grace_period_resources_and_security(tmp_path: Path) -> None:
    config = _configmap_config(tmp_path)
    spec = _manifests()["Deployment"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > config.ops.shutdown_timeout_s
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["ops"] == config.ops.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert set(container["resources"]) == {"requests", "limits"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["TD_API_KEY_FILE"].startswith(mounts["secrets"])
    assert env["TD_WP13N_TOKEN_FILE"].startswith(mounts["secrets"])
    assert container["args"][-1] == f"{mounts['config']}/forwarder.toml"


def test_secret_template_holds_only_placeholders() -> None:
    secret = _manifests()["Secret"]
    assert "data" not in secret
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    deployment = _manifests()["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in deployment["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    names = {
        Path(e["value"]).name
        for e in deployment["containers"][0]["env"]
        if e["name"].endswith("_FILE")
    }
    assert names == set(secret["stringData"])


def test_keda_scales_the_deployment_on_the_group_lag_up_to_the_partition_count(
    tmp_path: Path,
) -> None:
    config = _configmap_config(tmp_path)
    scaled = _manifests()["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == _manifests()["Deployment"]["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= PARTITIONS
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config.kafka.group_id
    assert trigger["metadata"]["topic"] in config.kafka.topics
    assert trigger["metadata"]["bootstrapServers"] == config.kafka.bootstrap_servers
    assert int(trigger["metadata"]["lagThreshold"]) > 0


def test_service_monitor_scrapes_the_ops_port_of_the_service() -> None:
    monitor = _manifests()["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = _manifests()["Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def _exposed_metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_alert_uses_only_metrics_the_code_exposes_and_links_the_runbook() -> None:
    rule = _manifests()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    exposed = _exposed_metric_names() | {"up"}
    readme = (ROOT / "README.md").read_text().lower()
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "ForwarderPaused",
        "ForwarderDeadLetterGrowth",
        "ForwarderLagAgeHigh",
    }
    for alert in alerts:
        used = set(re.findall(r"\b(forwarder_[a-z_]+|up)\b", alert["expr"]))
        assert used, alert["alert"]
        assert used <= exposed, f"{alert['alert']} uses {used - exposed}"
        anchor = alert["annotations"]["runbook_url"].rpartition("#")[2]
        assert f"### {anchor}" in readme, f"README has no runbook entry for {alert['alert']}"


def test_configmap_toml_parses_as_toml() -> None:
    tomllib.loads(_manifests()["ConfigMap"]["data"]["forwarder.toml"])
