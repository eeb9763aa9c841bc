"""The Grafana dashboard agrees with the code, the alerts and its Kubernetes ConfigMap.

Every query of ``deploy/grafana/forwarder.json`` (panel targets and template variables) is parsed
as PromQL and may name only metrics the forwarder exports (``tests/metric_names.py``, taken from
its registry), so the dashboard cannot drift from the code. No Grafana runs here; the compose
stack's Grafana service is checked with the other compose services in ``test_deploy.py``.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.metric_names import exposed_metric_names, promql_metric_names, promql_selectors

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "forwarder.json"
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "grafana-dashboard.yaml"
CONFIGMAP_SCRIPT = ROOT / "scripts" / "grafana-dashboard-configmap.sh"
RULES = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Each panel query narrows to the replicas picked in these variables; "All" is ".*", which also
# matches a series without the label (no namespace in the compose stack).
FILTERS = ("namespace", "job", "instance")
# Grafana's interval variables are not PromQL; a duration in their place parses the same.
_INTERVALS = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{__\w+\}")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")
# The sidecar's default label, in the Grafana chart and in kube-prometheus-stack.
SIDECAR_LABEL = ("grafana_dashboard", "1")
# kubectl apply (client side) keeps the whole object in an annotation limited to 256 KiB.
LAST_APPLIED_LIMIT = 262_144


@functools.cache
def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too; rows themselves excluded."""
    panels = []
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            panels += panel.get("panels", [])
        else:
            panels.append(panel)
    return panels


def _targets() -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], t) for panel in _panels() for t in panel["targets"]]


def _variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _dashboard()["templating"]["list"]}


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert isinstance(text, str)
    return text


def _promql(query: str) -> str:
    """A panel query or a variable's ``label_values(selector, label)`` as plain PromQL."""
    label_values = _LABEL_VALUES.fullmatch(query.strip())
    if label_values:
        query = label_values["selector"]
    return _INTERVALS.sub("1m", query)


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every query the dashboard sends."""
    queries = [(f"panel {title!r}", _promql(t["expr"])) for title, t in _targets()]
    queries += [
        (f"variable {name!r}", _promql(_variable_query(v)))
        for name, v in _variables().items()
        if v["type"] == "query"
    ]
    return queries


def _dashboard_metric_names() -> set[str]:
    return {name for _, query in _queries() for name in promql_metric_names(query)}


def test_every_query_names_only_metrics_the_forwarder_exports() -> None:
    exposed = exposed_metric_names()
    problems = []
    for where, query in _queries():
        try:
            used = promql_metric_names(query)
        except ValueError as error:
            problems.append(f"{where} is not PromQL ({error}): {query}")
            continue
        if not used & exposed:
            problems.append(f"{where} names no forwarder metric: {query}")
        if used - exposed:
            problems.append(
                f"{where} names {sorted(used - exposed)}, which the code does not export"
            )
    assert not problems, "\n".join(problems)


def test_every_panel_query_narrows_to_the_chosen_replicas() -> None:
    problems = []
    for title, target in _targets():
        for name, matchers in promql_selectors(_promql(target["expr"])):
            found = {(label, op, value) for label, op, value in matchers}
            missing = [f for f in FILTERS if (f, "=~", f"${f}") not in found]
            if missing:
                problems.append(f"{title!r}: {name} lacks {missing}")
    assert not problems, "\n".join(problems)


def test_variables_chain_and_match_any_prometheus_datasource() -> None:
    variables = _variables()
    source = variables["datasource"]
    assert source["type"] == "datasource"
    assert source["query"] == "prometheus"
    for previous, name in enumerate(FILTERS):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["includeAll"] and variable["allValue"] == ".*", name
        (selector,) = promql_selectors(_promql(_variable_query(variable)))
        assert {label for label, _, _ in selector[1]} == set(FILTERS[:previous]), name
    assert list(variables) == ["datasource", *FILTERS]


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for panel in _panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]


def test_dashboard_shows_what_the_issue_and_every_alert_watch() -> None:
    shown = _dashboard_metric_names()
    wanted = {
        "forwarder_events_consumed_total",
        "forwarder_events_forwarded_total",
        "forwarder_events_retried_total",
        "forwarder_events_dead_lettered_total",
        "forwarder_endpoint_state",
        "forwarder_destination_state",
        "forwarder_http_request_duration_seconds_bucket",
        "forwarder_http_requests_in_flight",
        "forwarder_concurrency_limit",
        "forwarder_consumer_lag_records",
        "forwarder_oldest_uncommitted_record_age_seconds",
        "forwarder_pending_bytes",
        "forwarder_personalization_requests_total",
        "forwarder_personalization_cache_lookups_total",
        "forwarder_personalization_fallbacks_total",
    }
    assert wanted <= shown, sorted(wanted - shown)
    rules = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    alerted = {
        name
        for group in rules
        for rule in group["rules"]
        for name in promql_metric_names(rule["expr"])
    }
    # `up` is Prometheus' own; the dashboard counts the replicas that report instead.
    assert alerted - {"up"} <= shown, sorted(alerted - {"up"} - shown)


def test_panels_have_unique_ids_and_titles_and_do_not_overlap() -> None:
    everything = _dashboard()["panels"] + [
        p for r in _dashboard()["panels"] for p in r.get("panels", [])
    ]
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in _panels()]
    assert len(titles) == len(set(titles)), titles
    cells: dict[tuple[int, int], str] = {}
    for panel in everything:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_is_importable_as_is() -> None:
    dashboard = _dashboard()
    # No numeric id (Grafana assigns one) and a fixed uid (links and provisioning find it).
    assert dashboard.get("id") is None
    assert dashboard["uid"] == "forwarder"
    assert dashboard["schemaVersion"] >= 39
    assert "__inputs" not in dashboard  # the datasource is a variable, not an import input


def test_kubernetes_configmap_is_the_script_output_and_carries_the_dashboard() -> None:
    generated = subprocess.run(
        ["bash", str(CONFIGMAP_SCRIPT)], capture_output=True, text=True, check=True
    ).stdout
    assert CONFIGMAP.read_text() == generated, (
        f"{CONFIGMAP.relative_to(ROOT)} is stale: run "
        f"{CONFIGMAP_SCRIPT.relative_to(ROOT)} > {CONFIGMAP.relative_to(ROOT)}"
    )
    (configmap,) = list(yaml.safe_load_all(generated))
    assert configmap["kind"] == "ConfigMap"
    label, value = SIDECAR_LABEL
    assert configmap["metadata"]["labels"][label] == value
    (key,) = configmap["data"]
    assert key.endswith(".json")  # the sidecar writes the key as the file name Grafana loads
    assert json.loads(configmap["data"][key]) == _dashboard()
    assert len(json.dumps(configmap).encode()) < LAST_APPLIED_LIMIT
