# Build: docker build -t costsplit .   Run: docker run --rm costsplit --help
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin costsplit

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/costsplit /usr/local/bin/costsplit
WORKDIR /var/lib/costsplit
ENTRYPOINT ["costsplit"]
