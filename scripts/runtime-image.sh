#!/usr/bin/env bash
# Builds the runtime image from a static stsmend binary, with no pull.
#
#   bash scripts/runtime-image.sh BINARY [TAG]   # prints the tag on its last line
#
# The Dockerfile's final stage (from its `FROM scratch` to the end) is built
# as it is, except that the binary comes from this script's context rather
# than from the Rust build stage, which needs a base image from a registry.
# The default tag carries the binary's hash, so a rebuilt binary is a new
# image and an unchanged one is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=${1:?usage: runtime-image.sh STATIC_BINARY [TAG]}
if ldd "$BINARY" 2>&1 | grep -q "=>"; then
  echo "runtime-image: $BINARY is dynamically linked; the image has no libc" >&2
  exit 1
fi
TAG=${2:-stsmend:local-$(sha256sum "$BINARY" Dockerfile | sha256sum | cut -c1-12)}
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "runtime-image: cached ($TAG)" >&2
  echo "$TAG"
  exit 0
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/stsmend-runtime-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$BINARY" "$ctx/stsmend"
sed -n '/^FROM scratch/,$p' Dockerfile | sed 's|^COPY --from=build /stsmend |COPY stsmend |' >"$ctx/Dockerfile"
grep -q '^COPY stsmend ' "$ctx/Dockerfile" || {
  echo "runtime-image: the Dockerfile's final stage no longer copies /stsmend from the build stage" >&2
  exit 1
}
docker build -q -t "$TAG" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
echo "runtime-image: built $TAG" >&2
echo "$TAG"
