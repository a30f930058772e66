#!/usr/bin/env bash
# Makes this Debian machine ready for DTMA: a Docker engine, a static busybox for the test images,
# Debian's docker-registry (and htpasswd) for the registry tests,
# and PostgreSQL with the role and database the tests use. Idempotent; run as root (or with sudo).
# Usage: setup-services.sh [--docker-only]
set -euo pipefail

DOCKERD_LOG=/var/log/dockerd.log
DEADLINE_S=60
PG_ROLE=dtma
PG_PASSWORD=dtma
PG_DATABASE=dtma_test
PG_EXPECTED_PORT=5432

apt_updated=false
pg_port=$PG_EXPECTED_PORT  # set by ensure_postgres from the cluster it finds

say() { printf 'setup-services: %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    if [ "$apt_updated" = false ]; then
        say "apt-get update"
        as_root apt-get -qq update
        apt_updated=true
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -qq -y -o DPkg::Lock::Timeout=120 install "$@" >/dev/null
}

# wait_for SECONDS COMMAND...: polls COMMAND once a second until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

ensure_docker() {
    if docker info >/dev/null 2>&1; then
        say "docker: the engine answers"
        return
    fi
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        apt_install docker.io
    fi
    if pgrep -x dockerd >/dev/null; then
        say "docker: dockerd is running but not answering yet; waiting"
    else
        say "docker: starting dockerd (log: $DOCKERD_LOG)"
        as_root setsid nohup dockerd </dev/null >>"$DOCKERD_LOG" 2>&1 &
    fi
    if ! wait_for "$DEADLINE_S" docker info; then
        tail -n 20 "$DOCKERD_LOG" >&2 || true
        die "the Docker engine did not answer within ${DEADLINE_S}s (see $DOCKERD_LOG)"
    fi
    say "docker: the engine answers"
}

ensure_static_busybox() {
    # ldd fails on a static binary; Debian's plain `busybox` package is dynamic and useless
    # inside a FROM-scratch image.
    if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
        say "busybox: /bin/busybox is static"
        return
    fi
    apt_install busybox-static
}

# Prints "<version> <port> <status>" of the newest cluster named main, if there is one.
ensure_registry() {
    # The registry tests start their own docker-registry (htpasswd auth, a free port) and need
    # only the binaries; the package's own service is not used.
    if [ -x /usr/bin/docker-registry ] && command -v htpasswd >/dev/null; then
        say "registry: docker-registry and htpasswd are installed"
        return
    fi
    apt_install docker-registry apache2-utils
}

main_cluster() {
    pg_lsclusters --no-header | awk '$2 == "main" { print $1, $3, $4 }' | sort -n | tail -n 1
}

psql_as_postgres() {
    (cd / && as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" "$@")
}

ensure_postgres() {
    if ! command -v pg_lsclusters >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        apt_install postgresql
    fi
    if [ -z "$(main_cluster)" ]; then
        local version
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
        say "postgres: creating cluster $version/main"
        as_root pg_createcluster "$version" main >/dev/null
    fi
    local pg_version pg_status
    read -r pg_version pg_port pg_status <<<"$(main_cluster)"
    if [ "$pg_status" != online ]; then
        say "postgres: starting cluster $pg_version/main"
        as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
    fi
    wait_for "$DEADLINE_S" pg_isready -q -h 127.0.0.1 -p "$pg_port" \
        || die "PostgreSQL $pg_version/main did not accept connections within ${DEADLINE_S}s"
    say "postgres: cluster $pg_version/main is up on port $pg_port"
    [ "$pg_port" = "$PG_EXPECTED_PORT" ] \
        || say "WARNING: the tests expect port $PG_EXPECTED_PORT; set DTMA_TEST_POSTGRES_URL"
    ensure_role_and_database
}

ensure_role_and_database() {
    if [ "$(psql_as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" != 1 ]; then
        say "postgres: creating role $PG_ROLE"
        psql_as_postgres -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
    fi
    # CREATEROLE: the read-only CLI tests read through a role of their own that may only SELECT.
    psql_as_postgres -c "ALTER ROLE $PG_ROLE CREATEDB CREATEROLE"
    if [ "$(psql_as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" != 1 ]; then
        say "postgres: creating database $PG_DATABASE"
        psql_as_postgres -c "CREATE DATABASE $PG_DATABASE OWNER $PG_ROLE"
    fi
    say "postgres: role $PG_ROLE and database $PG_DATABASE are there"
}

main() {
    case "${1:-}" in
        --docker-only) ensure_docker ;;
        "")
            ensure_docker
            ensure_static_busybox
            ensure_registry
            ensure_postgres
            ;;
        *) die "unknown argument: $1 (usage: setup-services.sh [--docker-only])" ;;
    esac
}

main "$@"
