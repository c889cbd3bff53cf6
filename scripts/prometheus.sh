#!/usr/bin/env bash
# Installs, once, the Prometheus components the alerting scenarios and the
# rule checks run against: Debian's prometheus-alertmanager,
# prometheus-pushgateway and prometheus (for promtool). Idempotent: present
# binaries are not installed again. Prints the directory that holds
# `alertmanager`, `pushgateway`, `prometheus` and `promtool` (symlinks to
# Debian's names).
#
#   scripts/prometheus.sh          install if needed, print the bin directory
#   scripts/prometheus.sh --check  also run `promtool check rules` and
#                                  `promtool test rules` on deploy/prometheus/
#
# Exit code 4: the packages could not be installed (no apt, no network);
# callers skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${STSMEND_PROMETHEUS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stsmend/prometheus/bin}

have() {
  command -v prometheus-alertmanager >/dev/null 2>&1 &&
    command -v prometheus-pushgateway >/dev/null 2>&1 &&
    command -v promtool >/dev/null 2>&1 &&
    command -v prometheus >/dev/null 2>&1
}

mkdir -p "$BIN"
# Tests run this script in parallel: one installs, the others wait.
exec 9>"$BIN/.lock"
flock 9

if ! have; then
  command -v apt-get >/dev/null 2>&1 || { echo "prometheus.sh: no apt-get" >&2; exit 4; }
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  echo "installing prometheus-alertmanager, prometheus-pushgateway, prometheus from Debian" >&2
  # The packages' services are not started: the tests start their own on
  # loopback (containers have a policy-rc.d that forbids it anyway).
  { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      prometheus-alertmanager prometheus-pushgateway prometheus; } >&2 ||
    { echo "prometheus.sh: apt-get install failed" >&2; exit 4; }
  have || { echo "prometheus.sh: binaries missing after install" >&2; exit 4; }
fi

ln -sf "$(command -v prometheus-alertmanager)" "$BIN/alertmanager"
ln -sf "$(command -v prometheus-pushgateway)" "$BIN/pushgateway"
ln -sf "$(command -v promtool)" "$BIN/promtool"
ln -sf "$(command -v prometheus)" "$BIN/prometheus"
flock -u 9

if [ "${1:-}" = --check ]; then
  "$BIN/promtool" check rules deploy/prometheus/stsmend-rules.yaml >&2
  (cd deploy/prometheus && "$BIN/promtool" test rules stsmend-rules.test.yaml) >&2
  # The dashboard's queries must parse too: each becomes a recording rule
  # for promtool to check (Grafana's $variables filled in).
  exprs=$(mktemp --suffix=.yaml)
  trap 'rm -f "$exprs"' EXIT
  python3 - deploy/grafana/stsmend-dashboard.json >"$exprs" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n- name: dashboard\n  rules:")
for p in d["panels"]:
    for t in p["targets"]:
        e = t["expr"].replace("$instance", ".*")
        print(f"  - record: dashboard:{p['id']}:{t['refId']}\n    expr: {json.dumps(e)}")
PY
  "$BIN/promtool" check rules "$exprs" >&2
fi
echo "$BIN"
