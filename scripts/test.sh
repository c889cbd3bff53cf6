#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and policy tests, and the
# end-to-end scenarios on a real control plane (built once and cached by
# scripts/control-plane.sh). This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2)"
if [ -z "${STSMEND_E2E_ASSETS:-}" ]; then
  STSMEND_E2E_ASSETS=$(bash scripts/control-plane.sh | tail -n 1)
  export STSMEND_E2E_ASSETS
fi
echo "assets: $STSMEND_E2E_ASSETS"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
