#!/usr/bin/env bash
# The local Prefect: a server (SQLite under .envforge/prefect) on 127.0.0.1 and a process worker
# for the envforge work pool.
#   scripts/prefect-local.sh start|stop|status
# Port: PREFECT_PORT (default 4200). Pids are kept in .envforge/*.pid and only those processes
# are ever stopped.
# PREFECT_DATABASE=postgresql: the server keeps its state in the database `prefect` of the
# PostgreSQL at PGHOST/PGPORT/PGUSER (the demo's, from .envforge/demo/env.sh) instead of SQLite:
# the configuration Prefect names for many concurrent runs. `start` bounds the concurrency so
# many pull requests at once do not overrun PostgreSQL or the registry: the work pool runs at
# most ENVFORGE_POOL_CONCURRENCY flow runs (default 4 on SQLite, 8 on PostgreSQL: a run's slot
# is mostly its start under load, 15-40 s, not CPU: 20 pull requests at once had p95 122.5 s
# (median of 3) with 8 against 150.9 s with 4 at a similar load; docs/benchmarks.md), and,
# with PREFECT_DATABASE=postgresql,
# the steps that clone databases or build images (task tags envforge-db, envforge-image) at most
# ENVFORGE_DB_CONCURRENCY / ENVFORGE_IMAGE_CONCURRENCY at once (default 2 each; 0: no limit).
# Not by default on SQLite, the one-person demo: in Prefect 3.8 a tag limit costs every task
# run with that tag a slot acquisition of 0.2-6 s even when no other run holds a slot (measured
# in the demo: PR opened -> Healthy 22.9 s with the limits, 15.3 s without).
# A task run refused a slot is told by the server when to ask again: at most
# PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS later (Prefect's default 10 s; with
# jitter, a refused step waited 27-32 s for a slot freed after 8-15 s in bench/fleet.py --prs 5).
# Set to 2 s here: a freed slot is taken within about 2 s, for one small query per waiting step
# every 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.envforge
PORT="${PREFECT_PORT:-4200}"
POOL="${ENVFORGE_WORK_POOL:-envforge-process}"
export PREFECT_HOME="$PWD/$STATE/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
DATABASE="${PREFECT_DATABASE:-sqlite}"
TAG_LIMIT_DEFAULT=0; [ "$DATABASE" = postgresql ] && TAG_LIMIT_DEFAULT=2
POOL_LIMIT_DEFAULT=4; [ "$DATABASE" = postgresql ] && POOL_LIMIT_DEFAULT=8
POOL_LIMIT="${ENVFORGE_POOL_CONCURRENCY:-$POOL_LIMIT_DEFAULT}"
WARM_SOCKET="$PWD/$STATE/warm-runner/socket"
if [ "${#WARM_SOCKET}" -gt 100 ]; then  # a Unix socket's path is at most 107 bytes
  WARM_SOCKET="/tmp/envforge-warm-$(id -u)-$(printf %s "$PWD" | sha256sum | cut -c1-12)/socket"
fi

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

use_postgresql() {
  # The database `prefect` on the demo's PostgreSQL (created once); Prefect migrates it at start.
  case "$DATABASE" in
    sqlite) return ;;
    postgresql) ;;
    *) echo "PREFECT_DATABASE=$DATABASE: give sqlite (the default) or postgresql" >&2; exit 2 ;;
  esac
  if [ -z "${PGHOST:-}" ] || [ -z "${PGPORT:-}" ]; then
    echo "PREFECT_DATABASE=postgresql needs PGHOST and PGPORT (source .envforge/demo/env.sh" \
         "after scripts/demo-services.sh start)" >&2
    exit 2
  fi
  .venv/bin/python - "$PGHOST" "$PGPORT" "${PGUSER:-postgres}" <<'PY' || exit 1
import sys
import psycopg
host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True,
                         connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'prefect'").fetchone() is None:
            conn.execute("CREATE DATABASE prefect")
except psycopg.Error as e:
    sys.exit(f"PREFECT_DATABASE=postgresql: PostgreSQL at {host}:{port} refused: "
             f"{str(e).strip().splitlines()[0]}")
PY
  export PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://${PGUSER:-postgres}@$PGHOST:$PGPORT/prefect"
  # Under a burst (bench/fleet.py --prs 20 on a loaded 2-core machine) Prefect's defaults (5 s
  # to connect, 10 s per statement, a pool of 5) made the API answer 500s (asyncpg connect
  # TimeoutError): more patience, and connections kept instead of opened per burst.
  export PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT="${PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT:-30}"
  export PREFECT_SERVER_DATABASE_TIMEOUT="${PREFECT_SERVER_DATABASE_TIMEOUT:-30}"
  export PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE="${PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE:-10}"
}

limit_concurrency() {
  # Bounded concurrency, kept on the server (a restart of the worker keeps it): the work pool's
  # limit caps flow runs at once; tag limits cap the database and image steps within them.
  local prefect=(.venv/bin/prefect --no-prompt)
  "${prefect[@]}" work-pool inspect "$POOL" >/dev/null 2>&1 \
    || "${prefect[@]}" work-pool create "$POOL" --type process >/dev/null
  "${prefect[@]}" work-pool set-concurrency-limit "$POOL" "$POOL_LIMIT" >/dev/null
  local tag limit
  local db="${ENVFORGE_DB_CONCURRENCY:-$TAG_LIMIT_DEFAULT}"
  local image="${ENVFORGE_IMAGE_CONCURRENCY:-$TAG_LIMIT_DEFAULT}"
  for tag in envforge-db:"$db" envforge-image:"$image"; do
    limit=${tag#*:}; tag=${tag%%:*}
    "${prefect[@]}" concurrency-limit delete "$tag" >/dev/null 2>&1 || true  # a previous start's
    if [ "$limit" -gt 0 ]; then
      "${prefect[@]}" concurrency-limit create "$tag" "$limit" >/dev/null
    fi
  done
  echo "concurrency: work pool $POOL $POOL_LIMIT flow runs;" \
       "task runs tagged envforge-db ${db/#0/unlimited}, envforge-image ${image/#0/unlimited}"
}

healthy() {
  .venv/bin/python - "$PREFECT_API_URL/health" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
}

start_server() {
  if running prefect-server; then
    echo "Prefect server already running (pid $(cat "$STATE/prefect-server.pid")) at http://127.0.0.1:$PORT"
    return
  fi
  if healthy; then
    echo "port $PORT already has a Prefect server that this script did not start;" \
         "stop it or set PREFECT_PORT to another port" >&2
    exit 1
  fi
  use_postgresql
  export PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS="${PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS:-2}"
  nohup .venv/bin/prefect server start --host 127.0.0.1 --port "$PORT" \
    >"$STATE/prefect-server.log" 2>&1 &
  echo $! >"$STATE/prefect-server.pid"
  echo "$DATABASE" >"$STATE/prefect-server.database"
  for _ in $(seq 1 90); do
    if healthy; then
      echo "Prefect server up at http://127.0.0.1:$PORT (pid $(cat "$STATE/prefect-server.pid")," \
           "database: $DATABASE)"
      return
    fi
    running prefect-server || {
      echo "Prefect server exited; see $STATE/prefect-server.log" >&2
      tail -20 "$STATE/prefect-server.log" >&2
      exit 1
    }
    sleep 1
  done
  echo "Prefect server did not answer within 90 s; see $STATE/prefect-server.log" >&2
  exit 1
}

start_warm_runner() {
  # Flow runs start as `python -m envforge.launch.flow_start` (prefect.yaml, envforge deploy), which
  # hands them to this warm runner: an engine forked with Prefect and envforge imported, about
  # 4 s sooner than a cold interpreter. Without it flow runs start cold; nothing else changes.
  if running warm-runner; then
    echo "warm runner already running (pid $(cat "$STATE/warm-runner.pid"))"
    return
  fi
  nohup .venv/bin/python -m envforge.launch.warm_runner --socket "$WARM_SOCKET" --preload flows \
    >"$STATE/warm-runner.log" 2>&1 &
  echo $! >"$STATE/warm-runner.pid"
  for _ in $(seq 1 60); do
    [ -S "$WARM_SOCKET" ] && break
    running warm-runner || { echo "warm runner exited; see $STATE/warm-runner.log" >&2; break; }
    sleep 0.5
  done
  echo "warm runner started (pid $(cat "$STATE/warm-runner.pid")), socket $WARM_SOCKET"
}

start_worker() {
  if running prefect-worker; then
    echo "worker already running (pid $(cat "$STATE/prefect-worker.pid")) for pool $POOL"
    return
  fi
  # Poll every second instead of Prefect's default 10 s: a pull request's environment starts
  # ~7.5 s sooner (bench/webhook_latency.py); one small query per second costs the server little.
  # The worker's own limit follows the pool's (a fixed 4 capped a larger ENVFORGE_POOL_CONCURRENCY).
  # It is `prefect worker start` through envforge.launch.prefect_cli: the same command, with one
  # TLS context for its API clients instead of a CA bundle parsed per client (a quarter of the
  # worker's CPU in bench/fleet.py's profile; envforge/launch/prefect_tls.py).
  ENVFORGE_WARM_RUNNER_SOCKET="$WARM_SOCKET" \
  PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-1}" \
  nohup .venv/bin/python -m envforge.launch.prefect_cli worker start --pool "$POOL" --type process \
    --limit "$POOL_LIMIT" \
    >"$STATE/prefect-worker.log" 2>&1 &
  echo $! >"$STATE/prefect-worker.pid"
  echo "process worker started for pool $POOL (pid $(cat "$STATE/prefect-worker.pid"))"
}

stop() {
  # TERM first; a worker busy retrying a connection can ignore it, so KILL after 15 s.
  for name in prefect-worker warm-runner prefect-server; do
    if running "$name"; then
      pid=$(cat "$STATE/$name.pid")
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$STATE/$name.pid"
  done
  rm -f "$STATE/prefect-server.database"
}

case "${1:-start}" in
  start) mkdir -p "$STATE"; start_server; limit_concurrency; start_warm_runner; start_worker ;;
  stop) stop ;;
  status)
    for name in prefect-server warm-runner prefect-worker; do
      if running "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))$(
        [ "$name" = prefect-server ] && echo ", database: $(cat "$STATE/prefect-server.database" 2>/dev/null || echo sqlite)")"
      else echo "$name: not running"; fi
    done ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
