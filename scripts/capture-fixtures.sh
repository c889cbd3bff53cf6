#!/usr/bin/env bash
# Re-captures tests/fixtures/ and examples/failing-rollout.yaml from a real
# control plane (built once and cached by scripts/control-plane.sh). The
# tests on the fixtures (tests/fixtures.rs) then say whether the diagnosis
# still agrees with what the objects show.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${STSMEND_E2E_ASSETS:-}" ]; then
  STSMEND_E2E_ASSETS=$(bash scripts/control-plane.sh | tail -n 1)
  export STSMEND_E2E_ASSETS
fi
cargo test --locked --test e2e capture_ -- --ignored --test-threads 2
