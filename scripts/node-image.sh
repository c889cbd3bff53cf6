#!/usr/bin/env bash
# Builds the node image and the test images, with no registry, kind-style.
#
#   bash scripts/node-image.sh ASSETS    # ASSETS: scripts/control-plane.sh's directory
#
# Needs a Docker engine (scripts/engine.sh). Prints the node image's tag on its
# last line. Every image is cached, keyed by its inputs: a second run with the
# same inputs builds nothing.
#
# - test images (localhost:5999/stsmend/*): busybox-static, FROM scratch, and
#   scripts/node/images/; localhost:5999 has no registry, so an image that is
#   not preloaded fails to pull on the node with a genuine ErrImagePull, and
#   nothing ever leaves the machine;
# - stsmend/node-base: a Debian bookworm rootfs (debootstrap) with containerd,
#   runc, the CNI plugins and iptables, imported with `docker import`;
# - stsmend/node: the base plus the kubelet v1.20.2 from ASSETS, the runc
#   wrapper, containerd's configuration, the entrypoint, and the test images
#   (a `docker save` archive that the entrypoint imports into containerd
#   before the kubelet starts).
set -euo pipefail
cd "$(dirname "$0")/.."

ASSETS=${1:?usage: node-image.sh CONTROL_PLANE_ASSETS}
CACHE_ROOT=${STSMEND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stsmend}
REGISTRY=localhost:5999/stsmend
PAUSE_IMAGE=$REGISTRY/pause:3.2
NODE_PACKAGES=containerd,runc,containernetworking-plugins,iptables,iproute2,jq,procps,ca-certificates
# Bumped whenever the image's shape changes in a way its inputs do not show.
BUILD=1

log() { echo "node-image: $*" >&2; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx httpd || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

have() { docker image inspect "$1" >/dev/null 2>&1; }
# The CLI warns that the engine's builder is the legacy one; keep the build's
# output for when it fails.
build() {
  docker build -q "$@" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; return 1; }
}
hash_of() { sha256sum "$@" | sha256sum | cut -c1-12; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stsmend-node-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- test images -----------------------------------------------------------
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
images_key=$( (echo "$BUILD $busybox_version"; cat scripts/node/images/*) | sha256sum | cut -c1-12)
# mode, version, tag
TEST_IMAGES=(
  "serve 1 app:1"
  "serve 2 app:2"
  "crash 2 app:2-crash"
  "oom 2 app:2-oom"
)
build_test_images() {
  local ctx=$WORK/test-images
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc"
  cp /bin/busybox "$ctx/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$ctx/rootfs/bin/$applet" ] || ln -s busybox "$ctx/rootfs/bin/$applet"
  done
  cp scripts/node/images/app scripts/node/images/pause "$ctx/rootfs/usr/bin/"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$ctx/rootfs/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$ctx/rootfs/etc/passwd"
  chmod 1777 "$ctx/rootfs/tmp"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/bin:/bin
ARG MODE=serve
ARG VERSION=1
ENV APP_MODE=$MODE APP_VERSION=$VERSION
ENTRYPOINT ["/usr/bin/app"]
DOCKERFILE
  build -t "$PAUSE_IMAGE" --label "stsmend.images=$images_key" -f - "$ctx" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/bin/pause"]
DOCKERFILE
  for spec in "${TEST_IMAGES[@]}"; do
    read -r mode version tag <<<"$spec"
    build -t "$REGISTRY/$tag" --build-arg "MODE=$mode" --build-arg "VERSION=$version" \
      --label "stsmend.images=$images_key" "$ctx"
  done
}
images_current() {
  local tag
  for tag in pause:3.2 $(printf '%s\n' "${TEST_IMAGES[@]}" | awk '{print $3}'); do
    [ "$(docker image inspect -f '{{index .Config.Labels "stsmend.images"}}' "$REGISTRY/$tag" 2>/dev/null)" = "$images_key" ] || return 1
  done
}
if images_current; then
  log "test images cached ($images_key)"
else
  log "building the test images ($images_key)"
  build_test_images
fi

# --- node base ---------------------------------------------------------------
base_key=$(echo "$BUILD bookworm $NODE_PACKAGES" | sha256sum | cut -c1-12)
BASE=stsmend/node-base:$base_key
if have "$BASE"; then
  log "base cached ($BASE)"
else
  log "debootstrap bookworm with $NODE_PACKAGES (about 2 minutes)"
  rootfs=$WORK/rootfs
  $SUDO debootstrap --variant=minbase --include="$NODE_PACKAGES" bookworm "$rootfs" \
    http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  $SUDO tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  $SUDO rm -rf "$rootfs"
fi

# --- node --------------------------------------------------------------------
node_key=$( (echo "$BUILD $base_key $images_key $PAUSE_IMAGE"; cat "$ASSETS/kubelet" scripts/node/entrypoint \
  scripts/node/runc-vm scripts/node/containerd.toml) | sha256sum | cut -c1-12)
NODE=stsmend/node:$node_key
if have "$NODE"; then
  log "node image cached ($NODE)"
else
  log "building $NODE"
  ctx=$WORK/node
  mkdir -p "$ctx"
  cp "$ASSETS/kubelet" scripts/node/entrypoint scripts/node/runc-vm "$ctx/"
  sed "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|" scripts/node/containerd.toml >"$ctx/containerd.toml"
  echo "$PAUSE_IMAGE" >"$ctx/pause-image"
  docker save -o "$ctx/images.tar" "$PAUSE_IMAGE" \
    $(printf '%s\n' "${TEST_IMAGES[@]}" | awk -v r="$REGISTRY" '{print r "/" $3}')
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY kubelet /usr/local/bin/kubelet
COPY runc-vm /usr/local/sbin/runc-vm
COPY entrypoint /usr/local/bin/stsmend-node
COPY containerd.toml /etc/containerd/config.toml
COPY images.tar pause-image /stsmend/
LABEL stsmend.node=$node_key
ENTRYPOINT ["/usr/local/bin/stsmend-node"]
DOCKERFILE
  build -t "$NODE" "$ctx"
fi
log "ready: $NODE"
echo "$NODE"
