# syntax=docker/dockerfile:1
# A static stsmend binary on distroless/static, running as non-root with no
# shell; works with a read-only root filesystem (it writes nothing locally).
#
#   docker build --build-arg STSMEND_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t stsmend:0.1.0 .
#
# CI builds the same target without Docker (scripts/test.sh).
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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /stsmend /usr/local/bin/stsmend
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stsmend"]
CMD ["plan"]
