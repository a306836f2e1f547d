# syntax=docker/dockerfile:1

# One image, both services: run `webhooks-dispatcher` (default) or `webhooks-sender`; also
# `webhooks-publish`, which publishes a domain event (as in the README's "Try it").
# Neither binds outside the container unless HTTP_ADDR is set (e.g. 0.0.0.0:8080 / 0.0.0.0:8081).

FROM rust:1.88-bookworm AS builder
WORKDIR /src
# Only what the workspace needs, so edits to docs or deploy files do not invalidate the build.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests
# The target dir is a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --release -p webhooks-dispatcher -p webhooks-sender \
 && install -D -m 0755 -t /out target/release/webhooks-dispatcher target/release/webhooks-sender \
      target/release/webhooks-publish

FROM debian:bookworm-slim
# ca-certificates unpinned: the image takes the distribution's current trust roots when built.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 webhooks \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin webhooks
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# 8080: dispatcher (API, /metrics, /healthz, /readyz); 8081: sender (/metrics, /healthz, /readyz).
EXPOSE 8080 8081
# Both binaries handle SIGTERM themselves: they drain within SHUTDOWN_GRACE (default 20s), then exit 0.
STOPSIGNAL SIGTERM
CMD ["webhooks-dispatcher"]
