# syntax=docker/dockerfile:1
# gatehouse image: `docker build -t gatehouse:0.1.0 .`
# Build stage: the toolchain pinned in rust-toolchain.toml, the lock file as committed.
FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse \
 && install -D -m 0755 target/release/gatehouse /out/gatehouse

# Runtime stage: glibc + libgcc only (TLS is rustls/aws-lc, linked in), no shell, non-root.
# Same Debian release as the build stage, so the glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve", "--config", "/etc/gatehouse/config/config.yaml"]
