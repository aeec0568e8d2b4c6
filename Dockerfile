# syntax=docker/dockerfile:1
# One image for both Switchboard binaries: `switchboard-hub` (the default command) and
# `switchboard-auth`. docker-compose.yml runs it as the auth node and as each hub node.
#
#   docker build -t switchboard .
#   docker run --rm -p 8080:8080 switchboard                 # one embedded node (SQLite)

# --- builder: compiles both binaries of the workspace ----------------------------------------
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# The whole workspace: every member's manifest is needed to resolve it, and Cargo.lock pins it.
COPY . .
# Shown by `switchboard_build_info{git_rev=...}` (compiled in): `docker build --build-arg
# SWITCHBOARD_GIT_REV=$(git rev-parse --short HEAD) .`; `unknown` when not given.
ARG SWITCHBOARD_GIT_REV=unknown
ENV SWITCHBOARD_GIT_REV=${SWITCHBOARD_GIT_REV}
# The registry and target dir are BuildKit caches, so a rebuild recompiles only what changed;
# the binaries are copied out of the cache into the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard-hub -p switchboard-auth \
    && mkdir -p /out \
    && cp target/release/switchboard-hub target/release/switchboard-auth /out/

# --- runtime: the binaries, curl for health checks, an unprivileged user ---------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/switchboard --create-home switchboard
COPY --from=builder /out/switchboard-hub /out/switchboard-auth /usr/local/bin/
USER switchboard
WORKDIR /var/lib/switchboard
# Listen on every interface inside the container; data (SQLite when embedded, the auth signing
# key) under the user's home, which compose mounts as a volume where it must survive.
ENV SWITCHBOARD_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard
EXPOSE 8080
# A hub closes its sockets with 1012 on SIGTERM and waits up to --shutdown-grace-ms (10 s).
STOPSIGNAL SIGTERM
CMD ["switchboard-hub"]
