# shellcheck shell=bash
# Sourced by the docker-* scripts: a Docker engine, a BuildKit-capable
# build command, and the local base images' names.

FLOWLINE_CACHE="${FLOWLINE_CACHE:-$HOME/.cache/flowline}"
# Local stand-ins for the public base images, made by scripts/docker-base.
LOCAL_DEBIAN="flowline-local/debian:bookworm-slim"
LOCAL_RUST="flowline-local/rust:bookworm"
LOCAL_RUNTIME="flowline-local/distroless-cc:nonroot"
LOCAL_PYTHON="flowline-local/python:3.11-slim-bookworm"
LOCAL_POSTGRES="flowline-local/postgres:15"
LOCAL_RABBITMQ="flowline-local/rabbitmq:3-management"

say() { echo "$(basename "$0"): $*" >&2; }

# Starts dockerd when no engine answers (Debian's docker.io installs it but
# nothing starts it on a machine without systemd).
ensure_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        say "no Docker engine: install Debian's docker.io (apt-get install docker.io)"
        return 1
    fi
    say "starting dockerd (log: $FLOWLINE_CACHE/dockerd.log)"
    mkdir -p "$FLOWLINE_CACHE"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo sh -c "nohup dockerd >'$FLOWLINE_CACHE/dockerd.log' 2>&1 &"
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    say "dockerd did not start; see $FLOWLINE_CACHE/dockerd.log"
    return 1
}

# `docker build` with BuildKit (secrets, skipped stages). A client without
# the buildx plugin cannot; Debian's own client (/usr/bin/docker) builds
# with BuildKit itself.
docker_build() {
    if docker buildx version >/dev/null 2>&1; then
        DOCKER_BUILDKIT=1 docker build "$@"
    elif [ -x /usr/bin/docker ]; then
        DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
    else
        DOCKER_BUILDKIT=1 docker build "$@"
    fi
}

# The host's CA bundle, passed to builds as the secret `cacert` (never
# stored in an image): registries behind a TLS proxy need it.
ca_secret() {
    local bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
    if [ -f "$bundle" ]; then
        echo "--secret=id=cacert,src=$bundle"
    fi
}

# `docker compose` where the plugin exists, else Debian's docker-compose.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# An image's size in MB, uncompressed (as `docker images` shows it).
image_mb() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f", $1 / 1000000 }'; }
