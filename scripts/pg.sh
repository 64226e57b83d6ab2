#!/usr/bin/env bash
# Start (or reuse) the project's own PostgreSQL server and print its DATABASE_URL.
#
#   scripts/pg.sh start   -> ensures a running server, creates the `jobs` database,
#                            writes .run/database_url and prints it
#   scripts/pg.sh stop    -> stops the server
#   scripts/pg.sh url     -> prints the URL of the running server
#
# PostgreSQL refuses to run as root, so the server runs as the `postgres` user.
# The data folder lives under .run/ when `postgres` can reach it, otherwise
# under /tmp in a folder named from the checkout's path (e.g. a clone in /root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.run"
mkdir -p "$RUN"
DBNAME="${PGDATABASE_NAME:-jobs}"

as_postgres() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_binaries() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return
    fi
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then
            export PATH="$d:$PATH"
            return
        fi
    done
    echo "pg.sh: initdb not found, installing Debian's postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then
            export PATH="$d:$PATH"
            return
        fi
    done
    echo "pg.sh: could not install PostgreSQL" >&2
    exit 1
}

pick_base() {
    # A folder the postgres user can write to.
    local base="$RUN/pg"
    if [ "$(id -u)" = "0" ]; then
        mkdir -p "$base"
        chown postgres "$base" 2>/dev/null || true
        if runuser -u postgres -- test -w "$base" 2>/dev/null; then
            echo "$base"
            return
        fi
        local hash
        hash="$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)"
        base="/tmp/jobs-pg-$hash"
        mkdir -p "$base"
        chown postgres "$base"
    else
        mkdir -p "$base"
    fi
    echo "$base"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

url_for() {
    echo "postgres://postgres@127.0.0.1:$1/$DBNAME"
}

start() {
    ensure_binaries
    local base data port
    base="$(pick_base)"
    data="$base/data"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres initdb -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
            || as_postgres initdb -D "$data" -U postgres --auth=trust -E UTF8 >"$base/initdb.log" 2>&1
    fi
    if as_postgres pg_ctl -D "$data" status >/dev/null 2>&1 && [ -f "$base/port" ]; then
        port="$(cat "$base/port")"
    else
        port="$(free_port)"
        echo "$port" >"$base/port"
        chown postgres "$base/port" 2>/dev/null || true
        # fsync off: this is a local development/test server that can be rebuilt;
        # production uses its own PostgreSQL. shared_buffers 1GB instead of the 128MB
        # default, nearer what a production server has (a quarter of RAM is usual): with
        # 128MB a 200,000-card expiration evicts its own pages (bench/expire_points.py).
        as_postgres pg_ctl -D "$data" -l "$base/server.log" -w -t 60 start \
            -o "-p $port -k $base -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=1GB" >/dev/null
    fi
    if ! psql -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" postgres | grep -q 1; then
        psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $DBNAME" postgres
    fi
    url_for "$port" >"$RUN/database_url"
    echo "$base" >"$RUN/pg_base"
    cat "$RUN/database_url"
}

stop() {
    ensure_binaries
    local base
    base="$(pick_base)"
    if [ -f "$base/data/PG_VERSION" ]; then
        as_postgres pg_ctl -D "$base/data" -m fast stop >/dev/null 2>&1 || true
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    url) cat "$RUN/database_url" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
