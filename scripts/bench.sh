#!/usr/bin/env bash
# Reproduces docs/performance.md's "Scale" figures: the scale benchmark of
# issue 7 (stsmend plan against a real control plane with N StatefulSets,
# next to `kubectl get statefulsets -A -o json` and scripts/baseline.sh)
# and the criterion bench of the default ladder.
#
#   bash scripts/bench.sh                  # N = 500, 2000, 5000; 5 runs each; ladder bench
#   bash scripts/bench.sh --smoke          # N = 20, one run, no baseline, no ladder bench
#   bash scripts/bench.sh --sizes 500 --runs 3   # other flags go to scale-bench
#
# Results go to $BENCH_OUT (default target/bench): scale.md (the table),
# scale.json (everything measured), ladder.txt; the table is also printed.
# Run it on an otherwise idle machine: it measures wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
args=()
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1 ;;
    *) args+=("$a") ;;
  esac
done

step() { printf '\n==> %s\n' "$*" >&2; }

step "control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2)"
if [ -z "${STSMEND_E2E_ASSETS:-}" ]; then
  STSMEND_E2E_ASSETS=$(bash scripts/control-plane.sh | tail -n 1)
  export STSMEND_E2E_ASSETS
fi
echo "assets: $STSMEND_E2E_ASSETS" >&2

target=${CARGO_TARGET_DIR:-target}
out=${BENCH_OUT:-$target/bench}
mkdir -p "$out"

step "release builds: stsmend, scale-bench"
cargo build --release --locked --bin stsmend
cargo build --release --locked -p stsmend-e2e --bin scale-bench

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

if [ "$smoke" = 1 ]; then
  step "scale benchmark, smoke size"
  "$target/release/scale-bench" --smoke --stsmend "$target/release/stsmend" \
    --json "$out/scale-smoke.json" --markdown "$out/scale-smoke.md" "${args[@]}"
  exit 0
fi

step "scale benchmark"
"$target/release/scale-bench" --stsmend "$target/release/stsmend" \
  --json "$out/scale.json" --markdown "$out/scale.md" "${args[@]}"

step "ladder bench (criterion): target under 50 µs per StatefulSet"
cargo bench --locked --bench ladder 2>&1 | tee "$out/ladder.log" >&2
# criterion prints the name, then `time: [low estimate high]`, sometimes on
# the same line.
awk '/^ladder\// { name = $0; sub(/[[:space:]]+time:.*/, "", name) }
     /time:/ { line = $0; sub(/.*time:[[:space:]]*/, "", line); print name ": " line }' \
  "$out/ladder.log" | tee "$out/ladder.txt"

step "results in $out"
cat "$out/scale.md"
