# The example receiver in a container: multi-stage, non-root, listening on
# all interfaces, the signing secret read from a mounted file.
#
#   docker build -t plugipay-receiver .                      # axum; --build-arg BIN=actix-web|rocket|warp|tower
#   docker run -p 3000:3000 \
#     -v ./whsec.txt:/run/secrets/plugipay_webhook_secret:ro \
#     -e PLUGIPAY_DEDUP_URL=postgres://… plugipay-receiver
#
# See docs/operations.md.

FROM rust:1.89-slim-bookworm AS build
ARG BIN=axum
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p plugipay-webhook-examples --bin "$BIN" \
 && cp "target/release/$BIN" /plugipay-receiver

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --uid 10001 plugipay
COPY --from=build /plugipay-receiver /usr/local/bin/plugipay-receiver
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=3000 \
    PLUGIPAY_WEBHOOK_SECRET_FILE=/run/secrets/plugipay_webhook_secret \
    RUST_LOG=info
EXPOSE 3000
# SIGTERM (docker stop) lets in-flight deliveries finish, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/plugipay-receiver"]
