#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for tests and benchmarks: data under DIR, listening on
# 127.0.0.1 only, trust authentication (it holds generated data only), stopped by its pid.
#
#   postgres.sh start DIR PORT   initdb (as the postgres user when run as root) and start;
#                                prints "PORT PID" on success
#   postgres.sh stop DIR         stop the postmaster whose pid is in DIR/data/postmaster.pid
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
[ -x "$PGBIN/initdb" ] || PGBIN="$(dirname "$(command -v initdb)")"

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }

case "$cmd" in
start)
    port="${3:?start needs a PORT}"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB \
         -c max_connections=60 -c shared_buffers=128MB" >/dev/null \
        || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "$port $(head -n 1 "$dir/data/postmaster.pid")"
    ;;
stop)
    pidfile="$dir/data/postmaster.pid"
    [ -f "$pidfile" ] || exit 0
    pid="$(head -n 1 "$pidfile")"
    kill -INT "$pid" 2>/dev/null || exit 0   # fast shutdown
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    echo "postgres.sh: postmaster $pid did not stop within 10 s" >&2
    exit 1
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
