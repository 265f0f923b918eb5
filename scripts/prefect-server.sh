#!/usr/bin/env bash
# Start or stop the local Prefect server (SQLite under .envforge/prefect) on 127.0.0.1.
#   scripts/prefect-server.sh start|stop|status
# Port: PREFECT_PORT (default 4200). The server's pid is kept in .envforge/prefect-server.pid,
# and only that process is ever stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.envforge
PORT="${PREFECT_PORT:-4200}"
PIDFILE="$STATE/prefect-server.pid"
LOG="$STATE/prefect-server.log"
export PREFECT_HOME="$PWD/$STATE/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-start}" in
  start)
    mkdir -p "$STATE"
    if running; then
      echo "Prefect server already running (pid $(cat "$PIDFILE")) at http://127.0.0.1:$PORT"
      exit 0
    fi
    nohup .venv/bin/prefect server start --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 90); do
      if .venv/bin/python - "$PREFECT_API_URL/health" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
        echo "Prefect server up at http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $LOG)"
        exit 0
      fi
      running || { echo "Prefect server exited; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
      sleep 1
    done
    echo "Prefect server did not answer within 90 s; see $LOG" >&2
    exit 1
    ;;
  stop)
    if running; then
      kill "$(cat "$PIDFILE")" && echo "stopped Prefect server (pid $(cat "$PIDFILE"))"
    else
      echo "Prefect server not running"
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if running; then echo "running (pid $(cat "$PIDFILE")) at http://127.0.0.1:$PORT"; else echo "not running"; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
