# Build: docker build -t costsplit .   Run: docker run --rm -p 9464:9464 -e COSTSPLIT_STORE_URL=... costsplit
# (the daemon, `costsplit run`, by default; any other command works too: `... costsplit --help`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin costsplit

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/costsplit /usr/local/bin/costsplit
RUN useradd --system --uid 10001 --home-dir /var/lib/costsplit --create-home costsplit
USER costsplit
WORKDIR /var/lib/costsplit
ENV COSTSPLIT_LISTEN=0.0.0.0:9464
EXPOSE 9464
ENTRYPOINT ["costsplit"]
CMD ["run"]
