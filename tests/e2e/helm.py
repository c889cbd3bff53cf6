"""Helm's own install and upgrade (the Helm v4 Go SDK through
helm-python-sdk, as scripts/render-manifests.sh installs it) against the
scenario's API server, for tests/e2e/owner.rs:

    helm.py KUBECONFIG CHART NAMESPACE RELEASE install|upgrade VALUES_JSON

Prints the release's name, namespace, revision and status as JSON.
"""
import json
import sys

import helm_python as helm

kubeconfig, chart, namespace, release, op, values = sys.argv[1:7]
cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
loaded = helm.Chart.load(chart)
act = cfg.install if op == "install" else cfg.upgrade
rel = act(loaded, release, json.loads(values), namespace=namespace, timeout=60)
print(json.dumps({k: rel.get(k) for k in ("name", "namespace", "revision", "status")}))
