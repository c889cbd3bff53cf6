# syntax=docker/dockerfile:1
# A static stsmend binary on distroless/static, running as non-root with no
# shell; works with a read-only root filesystem (it writes nothing locally).
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin stsmend \
 && cp target/x86_64-unknown-linux-musl/release/stsmend /stsmend

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /stsmend /usr/local/bin/stsmend
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stsmend"]
CMD ["plan"]
