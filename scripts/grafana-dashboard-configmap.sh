#!/usr/bin/env bash
# Prints the Kubernetes ConfigMap that carries deploy/grafana/forwarder.json, the one source:
#   scripts/grafana-dashboard-configmap.sh > deploy/kubernetes/grafana-dashboard.yaml
# tests/unit/test_dashboard.py fails when the committed ConfigMap is not this output.
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<'EOF'
# Generated from deploy/grafana/forwarder.json by scripts/grafana-dashboard-configmap.sh: edit
# the JSON, then run the script. The Grafana chart's dashboard sidecar (kube-prometheus-stack's
# too) loads ConfigMaps labelled grafana_dashboard: "1" from the namespaces it searches.
apiVersion: v1
kind: ConfigMap
metadata:
  name: forwarder-grafana-dashboard
  labels:
    app.kubernetes.io/name: forwarder
    grafana_dashboard: "1"
data:
  forwarder.json: |
EOF
sed 's/^/    /' deploy/grafana/forwarder.json
