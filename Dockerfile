# confab: one binary serving the web client, signalling (TCP) and all media (one UDP port).
#
#   docker build -t confab .
#   docker run --rm -p 8080:8080 -p 10000:10000/udp confab --public-ip <the host's IP>
#
# Browsers reach the media port at the address announced in ICE candidates, so behind Docker's
# NAT give the host's address with --public-ip (or CONFAB_PUBLIC_IP). Camera access needs
# HTTPS off localhost: add --tls-cert/--tls-key (mount them), or --tls-self-signed for a trial.

FROM rust:1-bookworm AS build
WORKDIR /src
# cmake and clang are what aws-lc-sys (str0m's SRTP/DTLS crypto) builds with.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY web ./web
COPY benches ./benches
RUN cargo build --release --locked --bin confab && strip target/release/confab

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home confab
COPY --from=build /src/target/release/confab /usr/local/bin/confab
USER confab
ENV CONFAB_LISTEN=0.0.0.0:8080 \
    CONFAB_UDP_PORT=10000
EXPOSE 8080/tcp 10000/udp 10000/tcp
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/confab"]
