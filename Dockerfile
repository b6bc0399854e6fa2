# flowline's container images, built in stages:
#
#   chef      a Rust toolchain with cargo-chef
#   planner   the dependency recipe of Cargo.toml and Cargo.lock
#   deps      every dependency compiled from the recipe: Docker keeps this
#             layer until the manifests change, so a source change
#             rebuilds flowline alone
#   build     flowline itself, with the prebuilt libduckdb.so it links
#   runtime   (default) distroless: the binary, libduckdb, CA certificates,
#             user 65532, no shell; runs with a read-only root filesystem
#   python    the runtime on Python with pandas, pyarrow, requests,
#             beautifulsoup4, selenium, boto3 and the AWS CLI
#
#   docker build -t flowline:latest .
#   docker build --target python -t flowline:python .
#
# FLOWLINE_BINARY=prebuilt skips the compile stages and takes
# dist/flowline and dist/libduckdb.so from the build context instead
# (scripts/docker-build --prebuilt puts them there). Builds behind a TLS
# proxy get its CA bundle as the secret `cacert`, which no image keeps:
#   docker build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt .

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG FLOWLINE_BINARY=source

FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN --mount=type=secret,id=cacert \
    if [ -f /run/secrets/cacert ]; then export CARGO_HTTP_CAINFO=/run/secrets/cacert; fi; \
    cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
RUN cargo chef prepare --recipe-path recipe.json

# The prebuilt DuckDB library of the pinned version (parquet, json and icu
# built in); compiling DuckDB instead takes the better part of an hour.
FROM chef AS duckdb
ARG DUCKDB_TARBALL=https://registry.npmjs.org/@duckdb/node-bindings-linux-x64/-/node-bindings-linux-x64-1.5.6-r.1.tgz
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=cacert \
    set -eu; ca=""; if [ -f /run/secrets/cacert ]; then ca="--cacert /run/secrets/cacert"; fi; \
    mkdir -p /opt/duckdb; \
    curl -fsSL $ca "${DUCKDB_TARBALL}" | tar xz -C /opt/duckdb --strip-components=1 package/libduckdb.so; \
    strip --strip-unneeded /opt/duckdb/libduckdb.so

FROM chef AS deps
# The Cargo profile: `container` (release with link-time optimisation,
# smaller), or `release` for a quicker build.
ARG CARGO_PROFILE=container
ENV CARGO_PROFILE=${CARGO_PROFILE}
COPY --from=duckdb /opt/duckdb/libduckdb.so /opt/duckdb/libduckdb.so
ENV DUCKDB_LIB_DIR=/opt/duckdb LD_LIBRARY_PATH=/opt/duckdb
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=secret,id=cacert \
    if [ -f /run/secrets/cacert ]; then export CARGO_HTTP_CAINFO=/run/secrets/cacert; fi; \
    cargo chef cook --profile "${CARGO_PROFILE}" --bin flowline --recipe-path recipe.json

FROM deps AS build-source
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
RUN cargo build --profile "${CARGO_PROFILE}" --bin flowline \
 && mkdir -p /out \
 && cp "target/${CARGO_PROFILE}/flowline" /out/flowline \
 && cp /opt/duckdb/libduckdb.so /out/libduckdb.so

FROM scratch AS build-prebuilt
COPY dist/flowline dist/libduckdb.so /out/

FROM build-${FLOWLINE_BINARY} AS binary

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=binary /out/libduckdb.so /usr/lib/libduckdb.so
COPY --from=binary /out/flowline /usr/local/bin/flowline
# The project is mounted here; its .flowline/ folder must be writable
# (a volume or a tmpfs when the root filesystem is read-only).
WORKDIR /project
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/flowline", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/flowline"]
CMD ["serve"]

FROM ${PYTHON_IMAGE} AS python
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=secret,id=cacert \
    set -eu; if [ -f /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/venv; \
    pip install --quiet --no-compile pandas pyarrow requests beautifulsoup4 selenium boto3 awscli; \
    find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -path '*/site-packages/*' -exec rm -rf {} +; \
    useradd --uid 65532 --user-group --home-dir /home/nonroot --create-home nonroot
COPY --from=binary /out/libduckdb.so /usr/lib/libduckdb.so
COPY --from=binary /out/flowline /usr/local/bin/flowline
WORKDIR /project
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/flowline", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/flowline"]
CMD ["serve"]
