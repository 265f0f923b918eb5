#!/usr/bin/env bash
# A throw-away CNCF distribution registry (Debian's docker-registry) for tests and benchmarks:
# filesystem storage under DIR, listening on 127.0.0.1 only, deletes enabled (so a rollback can
# remove a tag it pushed), optional htpasswd (bcrypt) authentication. Stopped by its pid.
#
#   registry.sh start DIR PORT [HTPASSWD]   write DIR/config.yml, start, wait for /v2/;
#                                          prints "PORT PID" on success
#   registry.sh stop DIR                   stop the registry whose pid is in DIR/registry.pid
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start DIR PORT [HTPASSWD] | stop DIR" >&2; exit 2; }

case "$cmd" in
start)
    port="${3:?start needs a PORT}"
    htpasswd="${4:-}"
    command -v docker-registry >/dev/null \
        || { echo "registry.sh: docker-registry is not installed (run scripts/bootstrap.sh)" >&2; exit 1; }
    mkdir -p "$dir/data"
    {
        echo "version: 0.1"
        echo "log: {level: warn, accesslog: {disabled: true}}"
        echo "storage:"
        echo "  filesystem: {rootdirectory: $dir/data}"
        echo "  delete: {enabled: true}"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        echo "  secret: envforge-test-$port"
        if [ -n "$htpasswd" ]; then
            echo "auth:"
            echo "  htpasswd: {realm: envforge-test, path: $htpasswd}"
        fi
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/registry.pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port $pid"; exit 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "registry.sh: registry did not start on 127.0.0.1:$port:" >&2
    tail -n 20 "$dir/registry.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
stop)
    pidfile="$dir/registry.pid"
    [ -f "$pidfile" ] || exit 0
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || { rm -f "$pidfile"; exit 0; }
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; exit 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
*)
    echo "usage: $0 start DIR PORT [HTPASSWD] | stop DIR" >&2; exit 2 ;;
esac
