# syntax=docker/dockerfile:1
# tokengate container image: build with the Rust image, run on slim Debian as a non-root user.
#
#   docker build -t tokengate .
#   docker run -p 8080:8080 -p 9091:9091 -v "$PWD/my-conf:/etc/tokengate:ro" \
#              -v tokengate-data:/var/lib/tokengate tokengate
#
# Not built or run on the machine it was written on (no Docker engine there): see docs/operations.md, Docker.

# The Rust release must be at least the newest rust-version among the locked dependencies.
ARG RUST_VERSION=1.95
# Build and run on the same Debian release, so the binary finds the glibc it was linked against.
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# cmake and a C/C++ toolchain for the native parts (aws-lc, zlib-ng, zstd, ring), as scripts/deps.sh.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tokengate \
 && install -D -m 0755 target/release/tokengate /out/tokengate

FROM debian:${DEBIAN_RELEASE}-slim
# curl only for the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tokengate \
 && useradd --system --uid 10001 --gid tokengate --home-dir /var/lib/tokengate \
      --shell /usr/sbin/nologin tokengate \
 && install -d -o tokengate -g tokengate -m 0750 /var/lib/tokengate \
 && install -d -m 0755 /etc/tokengate
COPY --from=build /out/tokengate /usr/local/bin/tokengate
# Listens on 0.0.0.0, keeps keys and tokens in /var/lib/tokengate, has no clients: mount your own.
COPY conf/docker.toml /etc/tokengate/gateway.toml
# Config (mount read-only) and data (signing keys, server.key, tokens.db: keep it across restarts).
VOLUME ["/etc/tokengate", "/var/lib/tokengate"]
USER tokengate:tokengate
WORKDIR /var/lib/tokengate
# 8080: OAuth endpoints and proxied traffic; 9091: /metrics and /healthz.
EXPOSE 8080 9091
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:9091/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tokengate"]
CMD ["--conf", "/etc/tokengate/gateway.toml"]
