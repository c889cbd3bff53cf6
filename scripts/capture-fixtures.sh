#!/usr/bin/env bash
# Re-captures tests/fixtures/, examples/failing-rollout.yaml and
# examples/preflight/snapshot.yaml from a real
# control plane (built once and cached by scripts/control-plane.sh), with
# simulated nodes, and tests/fixtures/kubelet.yaml on a real node. The
# tests on the fixtures (tests/fixtures.rs) then say whether the diagnosis
# still agrees with what the objects show.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${STSMEND_E2E_ASSETS:-}" ]; then
  STSMEND_E2E_ASSETS=$(bash scripts/control-plane.sh | tail -n 1)
  export STSMEND_E2E_ASSETS
fi
# capture_kubelet runs on a real node: a Docker engine and the node image.
eval "$(bash scripts/engine.sh)"
trap 'bash scripts/engine.sh stop' EXIT
if [ -z "${STSMEND_E2E_NODE_IMAGE:-}" ]; then
  STSMEND_E2E_NODE_IMAGE=$(bash scripts/node-image.sh "$STSMEND_E2E_ASSETS" | tail -n 1)
  export STSMEND_E2E_NODE_IMAGE
fi
cargo test --locked --test e2e capture_ -- --ignored --test-threads 2
