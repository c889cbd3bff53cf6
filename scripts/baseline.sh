#!/usr/bin/env bash
# The naive baseline of issue 7: the KubeStatefulSetGenerationMismatch /
# KubeStatefulSetUpdateNotRolledOut runbooks scripted with kubectl and jq the
# way a person following them would: LIST the StatefulSets, then for every
# one of them describe it, get its pods, get its events and its rollout
# history, and decide from what they show.
#
# scale-bench runs it on the same cluster as stsmend and compares the wall
# times (docs/performance.md). On its own:
#
#   KUBECONFIG=~/.kube/config bash scripts/baseline.sh
#
# Environment: KUBECTL (default `kubectl`), KUBECTL_FLAGS (extra flags for
# every call, e.g. `--cache-dir=/tmp/kc`), KUBECONFIG.
# stdout: one line per failing StatefulSet with what the runbook looks at,
# then `baseline: checked N statefulsets, F failing`. stderr ends with
# `kubectl invocations: K`.
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl}
read -r -a flags <<<"${KUBECTL_FLAGS:-}"
k() { "$KUBECTL" "${flags[@]}" "$@" </dev/null; }

# Fields the runbook's detection needs, one StatefulSet per line, '|'-separated
# (a whitespace separator would collapse empty fields).
list=$(k get statefulsets --all-namespaces -o json)
rows=$(jq -r '.items[] | [
    .metadata.namespace, .metadata.name,
    (.metadata.generation // 0), (.status.observedGeneration // 0),
    (.spec.replicas // 1), (.status.readyReplicas // 0), (.status.updatedReplicas // 0),
    (.status.currentRevision // ""), (.status.updateRevision // ""),
    ((.spec.selector.matchLabels // {}) | to_entries | map("\(.key)=\(.value)") | join(","))
  ] | map(tostring) | join("|")' <<<"$list")

checked=0
failing=0
while IFS='|' read -r ns name gen observed replicas ready updated current update selector; do
  [ -n "$name" ] || continue
  checked=$((checked + 1))
  describe=$(k describe statefulset -n "$ns" "$name")
  pods=$(k get pods -n "$ns" -l "$selector" -o json)
  events=$(k get events -n "$ns" --field-selector "involvedObject.name=$name" -o json)
  history=$(k rollout history statefulset -n "$ns" "$name")

  symptoms=()
  if [ "$gen" != "$observed" ]; then
    symptoms+=("generation $gen, observed $observed")
  fi
  if [ "$current" != "$update" ] && [ "$updated" -lt "$replicas" ]; then
    symptoms+=("rollout stuck: $updated/$replicas updated to $update")
  fi
  if [ "$ready" -lt "$replicas" ]; then
    symptoms+=("$ready/$replicas ready")
  fi
  [ "${#symptoms[@]}" -gt 0 ] || continue
  failing=$((failing + 1))

  status_line=$(grep -m1 '^Pods Status:' <<<"$describe" | sed 's/^Pods Status:[[:space:]]*//' || true)
  pod_causes=$(jq -r '[.items[] | .metadata.name as $p |
      ([.status.containerStatuses[]? | select(.ready | not) |
          "\($p): \(.state.waiting.reason // (if .state.running then "running, not ready" else "not running" end))"
          + (if .restartCount > 0 then " (\(.restartCount) restarts)" else "" end)]
       + [.status.conditions[]? | select(.type == "PodScheduled" and .status == "False") |
          "\($p): unschedulable: \(.message // .reason)"])[]]
      | if length == 0 then "none" else join("; ") end' <<<"$pods")
  pod_count=$(jq '.items | length' <<<"$pods")
  warnings=$(jq -r '[.items[] | select(.type == "Warning") | "\(.reason): \(.message)"]
      | unique | if length == 0 then "none" else join("; ") end' <<<"$events")
  revisions=$(grep -cE '^[0-9]+[[:space:]]' <<<"$history" || true)

  printf '%s/%s: %s | pods (%s of %s; %s): %s | events: %s | revisions: %s\n' \
    "$ns" "$name" "$(IFS=';'; echo "${symptoms[*]}")" "$pod_count" "$replicas" \
    "$status_line" "$pod_causes" "$warnings" "$revisions"
done <<<"$rows"

echo "baseline: checked $checked statefulsets, $failing failing"
echo "kubectl invocations: $((1 + 4 * checked))" >&2
