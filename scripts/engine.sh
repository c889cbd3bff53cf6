#!/usr/bin/env bash
# A Docker engine for the real-node scenarios, set up idempotently.
#
#   eval "$(bash scripts/engine.sh)"   # start (or find) an engine; exports DOCKER_HOST
#   bash scripts/engine.sh stop         # stop only what an earlier start started
#
# Where an engine already answers (a laptop, a hosted CI runner), it is used as
# it is. Otherwise Debian's docker.io is installed and dockerd is started with
# scripts/node/runc-vm as its default runtime (the build VMs lack
# CAP_SYS_RESOURCE; see e2e/README.md). testcontainers speaks Docker API 1.52
# and never negotiates down; where the engine is older (Debian's 20.10 serves
# 1.41), the e2e crate's docker-api-bridge is started in front of it and
# DOCKER_HOST points at the bridge.
#
# Prints shell `export` lines on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_ROOT=${STSMEND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stsmend}
RUN_DIR=${STSMEND_ENGINE_DIR:-$CACHE_ROOT/engine}
WRAPPER_DIR=/usr/local/lib/stsmend
# The API version testcontainers (through bollard) asks for.
CLIENT_API=1.52

log() { echo "engine: $*" >&2; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$file"
}

# `stop` stops what STSMEND_ENGINE_STARTED names (the start printed it), or
# with it unset, whatever an earlier start left a pid file for.
if [ "${1:-start}" = stop ]; then
  for what in ${STSMEND_ENGINE_STARTED-bridge dockerd}; do
    [ -f "$RUN_DIR/$what.pid" ] && log "stopping the $what this script started"
    stop_pid "$RUN_DIR/$what.pid"
  done
  exit 0
fi
started=()

mkdir -p "$RUN_DIR"

answers() { DOCKER_HOST=${1:-${DOCKER_HOST:-}} docker version --format '{{.Server.APIVersion}}' 2>/dev/null; }

if ! api=$(answers); then
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer"
    exit 1
  fi
  if ! command -v dockerd >/dev/null || ! command -v jq >/dev/null; then
    log "installing docker.io and jq"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      docker.io jq iptables >&2
  fi
  $SUDO install -D -m 0755 scripts/node/runc-vm "$WRAPPER_DIR/runc-vm"
  log "starting dockerd (runtime runc-vm), log: $RUN_DIR/dockerd.log"
  $SUDO dockerd --add-runtime "runc-vm=$WRAPPER_DIR/runc-vm" --default-runtime runc-vm \
    --host unix:///var/run/docker.sock >"$RUN_DIR/dockerd.log" 2>&1 &
  echo $! >"$RUN_DIR/dockerd.pid"
  started+=(dockerd)
  for _ in $(seq 150); do
    api=$(answers) && break
    kill -0 "$(cat "$RUN_DIR/dockerd.pid")" 2>/dev/null || { tail -n 20 "$RUN_DIR/dockerd.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "${api:-}" ] || { log "dockerd did not answer in 30 s"; tail -n 20 "$RUN_DIR/dockerd.log" >&2; exit 1; }
fi
log "engine answers, API $api"

older() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ] && [ "$1" != "$2" ]; }
if older "$api" "$CLIENT_API"; then
  upstream=${DOCKER_HOST:-unix:///var/run/docker.sock}
  sock=$RUN_DIR/bridge.sock
  if ! answers "unix://$sock" >/dev/null; then
    stop_pid "$RUN_DIR/bridge.pid"
    log "building docker-api-bridge (testcontainers asks for $CLIENT_API, the engine serves $api)"
    cargo build --locked -q -p stsmend-e2e --bin docker-api-bridge >&2
    bin=${CARGO_TARGET_DIR:-target}/debug/docker-api-bridge
    rm -f "$sock"
    "$bin" --listen "$sock" --upstream "$upstream" --version "$api" >"$RUN_DIR/bridge.log" 2>&1 &
    echo $! >"$RUN_DIR/bridge.pid"
    started+=(bridge)
    for _ in $(seq 50); do answers "unix://$sock" >/dev/null && break; sleep 0.1; done
    answers "unix://$sock" >/dev/null || { log "the bridge did not answer"; cat "$RUN_DIR/bridge.log" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=unix://$sock"
else
  [ -n "${DOCKER_HOST:-}" ] && echo "export DOCKER_HOST=$DOCKER_HOST"
fi
echo "export STSMEND_ENGINE_STARTED=\"${started[*]}\""
exit 0
