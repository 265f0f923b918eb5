# Shared by the service scripts (kubernetes.sh, node.sh, argocd.sh, ingress.sh, openbao.sh):
# messages, free ports, waiting, and daemons started and stopped by the pid files under
# $DIR/pids. Sourced, never run: `. "$HERE/lib.sh"` after `set -euo pipefail`.
#   log/die            messages on stderr, prefixed with the calling script's name
#   free_port          a free TCP port on 127.0.0.1
#   wait_for WHAT S C  run C every 0.2 s until it succeeds, at most S seconds (1 on timeout)
#   start_daemon N C   run C in the background: log to ${DAEMON_LOGS:-$DIR}/N.log, pid to $DIR/pids/N
#   running N          the daemon N of $DIR is alive
#   stop_daemon N      SIGTERM, up to 10 s to exit, then SIGKILL; only the pid this DIR recorded
#   timed_build WHAT F run F (a build): "building WHAT ..." before, "WHAT: built in N s" after
# Builds go into ${ENVFORGE_CACHE:-~/.cache/envforge}; Go keeps its module downloads and compiled
# packages in GOMODCACHE and GOCACHE (Go's defaults under $HOME unless set): set all three to
# fresh folders to measure or check a first run without touching the usual caches.

SERVICE_SCRIPT="$(basename "$0")"

log() { echo "$SERVICE_SCRIPT: $*" >&2; }
die() { log "$*"; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() {  # description seconds command...
    local what=$1 secs=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
    log "$what ready"
}

start_daemon() {  # name command...
    local name=$1; shift
    mkdir -p "$DIR/pids"
    nohup "$@" >"${DAEMON_LOGS:-$DIR}/$name.log" 2>&1 &
    echo $! >"$DIR/pids/$name"
}

running() { [ -f "$DIR/pids/$1" ] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }

stop_daemon() {  # name
    local pid
    [ -f "$DIR/pids/$1" ] || return 0
    pid=$(cat "$DIR/pids/$1")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$DIR/pids/$1"
}

timed_build() {  # what function...: one line a person can follow before and after a build
    local what=$1 t0=$SECONDS; shift
    log "building $what ..."
    "$@" || return
    log "$what: built in $((SECONDS - t0)) s"
}
