# syntax=docker/dockerfile:1
# A static stsmend binary alone in the image (FROM scratch: no base image to
# pull, no shell), running as non-root; works with a read-only root
# filesystem (it writes nothing locally, and needs no CA bundle: in-cluster
# it trusts the service account's CA).
#
#   docker build --build-arg STSMEND_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t stsmend:0.1.0 .
#
# Where nothing can be pulled (CI), scripts/runtime-image.sh builds the final
# stage below from a static binary built outside Docker.
FROM rust:1.95-bookworm AS build
# musl-tools: a C compiler for the musl target (ring's assembly and C).
# Its version is the base image's Debian release; pinning it would break the
# build at every Debian point release.
# hadolint ignore=DL3008
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# `stsmend --version` names this revision (build.rs; .git may be absent).
ARG STSMEND_GIT_REVISION=""
ENV STSMEND_GIT_REVISION=${STSMEND_GIT_REVISION}
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin stsmend \
 && cp target/x86_64-unknown-linux-musl/release/stsmend /stsmend

# The final stage; scripts/runtime-image.sh builds these lines as they are,
# with the binary taken from its context instead of the build stage.
FROM scratch
COPY --from=build /stsmend /usr/local/bin/stsmend
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stsmend"]
CMD ["plan"]
