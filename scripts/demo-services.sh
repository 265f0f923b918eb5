#!/usr/bin/env bash
# The local parts of a full environment for `make demo`: PostgreSQL, the image registry, the
# Vault and Kubernetes API stand-ins (tests/standins: no Vault or Kubernetes can run here), and
# a busybox base image built FROM scratch. All on 127.0.0.1, state under .envforge/demo/,
# pids kept there; `stop` ends only those processes.
#   scripts/demo-services.sh start|stop
# `start` prints the shell variables that point envforge at them (eval its output).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.envforge/demo/services"
PG_PORT="${DEMO_PG_PORT:-54329}"; REGISTRY_PORT="${DEMO_REGISTRY_PORT:-5055}"
VAULT_PORT="${DEMO_VAULT_PORT:-8209}"; KUBE_PORT="${DEMO_KUBE_PORT:-8449}"

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_standin() {  # name module port [extra args]
  local name=$1 module=$2 port=$3; shift 3
  if ! running "$name"; then
    nohup .venv/bin/python -m "$module" --port "$port" "$@" >"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
  fi
  for _ in $(seq 1 50); do
    grep -q "stand-in on" "$STATE/$name.log" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "the $name stand-in did not start; see $STATE/$name.log" >&2; exit 1
}

case "${1:-start}" in
start)
  mkdir -p "$STATE"
  if [ ! -f "$STATE/pg/data/postmaster.pid" ]; then
    bash scripts/services/postgres.sh start "$STATE/pg" "$PG_PORT" >/dev/null
  fi
  if ! { [ -f "$STATE/registry/registry.pid" ] && kill -0 "$(cat "$STATE/registry/registry.pid")" 2>/dev/null; }; then
    bash scripts/services/registry.sh start "$STATE/registry" "$REGISTRY_PORT" >/dev/null
  fi
  start_standin vault tests.standins.vault "$VAULT_PORT"
  start_standin kubernetes tests.standins.kubernetes "$KUBE_PORT" --kubeconfig "$STATE/kubeconfig"
  BASE="127.0.0.1:$REGISTRY_PORT/base/busybox:1"
  BUILDAH=(buildah --storage-driver vfs --root "$PWD/.envforge/demo/cache/buildah/root"
           --runroot "$PWD/.envforge/demo/cache/buildah/run")
  if ! skopeo inspect --tls-verify=false "docker://$BASE" >/dev/null 2>&1; then
    ctx="$STATE/base-image"; mkdir -p "$ctx"; cp /bin/busybox "$ctx/busybox"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' \
      >"$ctx/Containerfile"
    "${BUILDAH[@]}" bud --quiet --isolation chroot -t "$BASE" -f "$ctx/Containerfile" "$ctx" >/dev/null
    "${BUILDAH[@]}" push --quiet --tls-verify=false "$BASE" "docker://$BASE"
  fi
  cat <<VARS
export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT VAULT_TOKEN=root-standin-token
export KUBECONFIG=$STATE/kubeconfig
export DEMO_REGISTRY=127.0.0.1:$REGISTRY_PORT DEMO_BASE_IMAGE=$BASE
VARS
  ;;
stop)
  for name in vault kubernetes; do
    if running "$name"; then kill "$(cat "$STATE/$name.pid")"; echo "stopped the $name stand-in"; fi
    rm -f "$STATE/$name.pid"
  done
  [ -d "$STATE/registry" ] && bash scripts/services/registry.sh stop "$STATE/registry" || true
  [ -d "$STATE/pg" ] && bash scripts/services/postgres.sh stop "$STATE/pg" || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
