#!/usr/bin/env bash
# Installs etcd and builds kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl and the kubelet v1.20.2 from Debian's `kubernetes`
# source package (the kubelet runs inside the node image, scripts/node-image.sh).
#
# The binaries are cached outside the repository, keyed by version, so only the
# first run on a machine pays the ~5 minute build. Prints the directory that
# holds the binaries (usable as STSMEND_E2E_ASSETS) on its last line.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_ROOT=${STSMEND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stsmend}
# The build number goes up whenever the build changes, so a stale cache is
# rebuilt rather than reused.
BUILD=3
ASSETS=$CACHE_ROOT/control-plane-$K8S_VERSION-$BUILD

log() { echo "control-plane: $*" >&2; }

have_assets() {
  [ -x "$ASSETS/kube-apiserver" ] && [ -x "$ASSETS/kube-controller-manager" ] &&
    [ -x "$ASSETS/kube-scheduler" ] && [ -x "$ASSETS/etcd" ] && [ -x "$ASSETS/kubectl" ] &&
    [ -x "$ASSETS/kubelet" ]
}

if have_assets; then
  log "cached in $ASSETS"
  echo "$ASSETS"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

if [ ! -f /etc/apt/sources.list.d/stsmend-src.sources ]; then
  log "adding deb-src for bookworm main"
  $SUDO tee /etc/apt/sources.list.d/stsmend-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
log "installing build dependencies and etcd"
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq golang-1.19-go rsync jq etcd-server openssl dpkg-dev \
  golang-github-modern-go-reflect2-dev >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stsmend-k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "fetching the kubernetes source package into $WORK"
apt-get source --download-only kubernetes >&2
orig=$(ls kubernetes_*.orig.tar.* | head -n1)
mkdir src
tar -xf "$orig" -C src --strip-components=1
cd src
# The vendored reflect2 v1.0.1 predates Go 1.18's map iterator layout: the
# API server built with Go 1.19 segfaults encoding maps (first seen when a
# CRD is created). Debian's own build uses the packaged v1.0.2, which fixed
# it with the same API; do the same over the vendored copy.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -rf vendor/github.com/modern-go/reflect2/.git* vendor/github.com/modern-go/reflect2/debian \
  vendor/github.com/modern-go/reflect2/go.mod vendor/github.com/modern-go/reflect2/go.sum
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
log "building (about 10 minutes on 2 cores)"
(
  export GOPATH=$PWD/.go GOCACHE=$WORK/gocache PATH=/usr/lib/go-1.19/bin:$PATH CGO_ENABLED=0
  export KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_TREE_STATE=clean
  cd .go/src/k8s.io/kubernetes
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl cmd/kubelet" >&2
)
mkdir -p "$ASSETS.tmp"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  cp "_output/local/bin/linux/amd64/$b" "$ASSETS.tmp/"
done
cp "$(command -v etcd || echo /usr/bin/etcd)" "$ASSETS.tmp/etcd"
rm -rf "$ASSETS"
mv "$ASSETS.tmp" "$ASSETS"
log "built into $ASSETS"
echo "$ASSETS"
