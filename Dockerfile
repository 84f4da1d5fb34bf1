# syntax=docker/dockerfile:1
#
# The `para` server as a container image (docs/deploy.md). Two stages: the official Rust image
# builds the release binary; a slim Debian runs it as an unprivileged user. Every setting comes
# from the environment (docs/configuration.md); the image holds no project folder and no key:
# servers serve the release `para push` stored in their PostgreSQL database.
#
#   docker build -t para .
#   docker run --env-file deploy/.env -p 7433:7433 para

# The toolchain of the workspace (`rust-version` in Cargo.toml), on the Debian the runtime
# stage uses, so the binary links against the same glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# The registry and the target folder are cache mounts: a rebuild after a change compiles only
# what changed. The binary is copied out of the mount, which the next stage cannot see.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p para-cli --locked \
    && install -m 0755 target/release/para /usr/local/bin/para

FROM debian:bookworm-slim
# CA certificates: the server calls providers' APIs and token endpoints over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/para --create-home \
       --shell /usr/sbin/nologin para
COPY --from=build /usr/local/bin/para /usr/local/bin/para
USER para
# An empty folder: no project is found here, so the server serves the database's releases.
WORKDIR /var/lib/para
# Listen on every interface of the container; the balancer in front terminates TLS.
# PARA_DATABASE_URL, PARA_PUBLIC_URL, PARA_SECRET_KEY, PARA_USER_TOKEN_PUBLIC_KEY,
# PARA_DEPLOY_KEY, PARA_ADMIN_KEY and PARA_OAUTH_<KEY>_CLIENT_ID/_CLIENT_SECRET come from the
# orchestrator (deploy/.env.example lists them).
ENV PARA_HOST=0.0.0.0 \
    PARA_PORT=7433 \
    PARA_LOG_FORMAT=json
EXPOSE 7433
# No HEALTHCHECK: the image has no HTTP client to run one with. Probe from the orchestrator
# instead: liveness GET /healthz, readiness GET /readyz (docs/deploy.md § Health and readiness).
# SIGTERM (docker stop) stops accepting and finishes the requests in flight.
ENTRYPOINT ["/usr/local/bin/para", "serve"]
