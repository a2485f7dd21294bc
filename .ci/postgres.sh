#!/usr/bin/env bash
# Throw-away PostgreSQL server on loopback for the store tests (DESIGN section 8).
#
#   eval "$(bash .ci/postgres.sh)"   # (or `start`) install if missing, init, start; prints
#                                    # the export line
#   bash .ci/postgres.sh stop        # stop the server and delete its directory
#
# Only the `export DELINQ_TEST_PG_URL=...` line goes to stdout; progress goes to stderr.
# Idempotent: a second call reuses the running server. Works as root (the server runs as
# the `postgres` user, which PostgreSQL requires) and as an ordinary user.
# Settings: DELINQ_PG_PORT (55432), DELINQ_PG_DIR (/tmp/delinq-pg), DELINQ_PG_DB
# (delinq_test), DELINQ_PG_DURABLE=1 keeps fsync on (default off: the cluster is disposable).
set -euo pipefail

PORT="${DELINQ_PG_PORT:-55432}"
ROOT="${DELINQ_PG_DIR:-/tmp/delinq-pg}"
DB="${DELINQ_PG_DB:-delinq_test}"
PGUSER_NAME=postgres
DATA="$ROOT/data"
LOG="$ROOT/server.log"

say() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$d" ]] && command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(command -v pg_ctl)")"
    fi
    echo "$d"
}

# Run a command as the server's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [[ "$(id -u)" != 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PGUSER_NAME" -- "$@"
    else
        su "$PGUSER_NAME" -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

BIN="$(find_bin)"
ACTION="${1:-start}"
case "$ACTION" in
    start|stop) ;;
    *) say "usage: bash .ci/postgres.sh [start|stop]"; exit 2 ;;
esac

if [[ "$ACTION" == stop ]]; then
    if [[ -n "$BIN" && -f "$DATA/postmaster.pid" ]]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    fi
    rm -rf "$ROOT"
    say "stopped and removed $ROOT"
    exit 0
fi

if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        say "PostgreSQL is not installed and we are not root: apt-get install postgresql"
        exit 1
    fi
    say "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    BIN="$(find_bin)"
    [[ -x "$BIN/initdb" ]] || { say "initdb not found after install"; exit 1; }
fi

if [[ "$(id -u)" != 0 ]]; then
    PGUSER_NAME="$(id -un)"
fi

# A directory left by an interrupted run (no PG_VERSION) or made by another PostgreSQL
# major version is rebuilt from scratch (after stopping whatever still runs there).
MAJOR="$("$BIN/pg_config" --version 2>/dev/null | sed -E 's/^PostgreSQL ([0-9]+).*/\1/' || true)"
if [[ -d "$ROOT" ]] && { [[ ! -f "$DATA/PG_VERSION" ]] || \
        [[ -n "$MAJOR" && "$(cat "$DATA/PG_VERSION")" != "$MAJOR" ]]; }; then
    say "rebuilding $ROOT"
    [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >&2 || true
    rm -rf "$ROOT"
fi
if [[ ! -d "$ROOT" ]]; then
    mkdir -p "$ROOT"
    [[ "$(id -u)" == 0 ]] && chown "$PGUSER_NAME": "$ROOT"
    chmod 700 "$ROOT"
    say "initdb $DATA ($("$BIN/postgres" --version))"
    # Trust on loopback only: a disposable cluster reachable from this machine alone.
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$ROOT/initdb.log" 2>&1 || { cat "$ROOT/initdb.log" >&2; exit 1; }
fi

if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    opts="-c listen_addresses=127.0.0.1 -p $PORT -k $ROOT -c max_wal_size=4GB"
    if [[ "${DELINQ_PG_DURABLE:-0}" != 1 ]]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    say "starting on 127.0.0.1:$PORT"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "$opts" start >&2 \
        || { tail -n 20 "$LOG" >&2; exit 1; }
fi

as_owner "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 30 \
    || { say "server not ready on port $PORT"; tail -n 20 "$LOG" >&2; exit 1; }

exists="$(as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
if [[ "$exists" != 1 ]]; then
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
    say "created database $DB"
fi

echo "export DELINQ_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
