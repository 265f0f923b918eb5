#!/usr/bin/env bash
# The real Argo CD on 127.0.0.1: its application controller and repo server, built from the
# pinned Go module into the cache beside Kubernetes, run as local processes against a cluster
# started by kubernetes.sh (out of cluster, through a kubeconfig), with Redis from Debian.
#
#   argocd.sh build                         build once into $ENVFORGE_CACHE (default
#                                           ~/.cache/envforge)/argocd/<version>/bin; prints it
#   argocd.sh start DIR KUBECONFIG [REPO_URL...]
#                                           start Redis, the repo server and the controller with
#                                           state under DIR; apply what Argo CD reads from the
#                                           cluster (namespace, ConfigMaps, Secrets, one
#                                           repository Secret per REPO_URL); writes DIR/argocd.env
#   argocd.sh stop DIR                      stop what `start DIR` started, by the pids in DIR/pids
#   argocd.sh version                       prints the pinned version and the bin dir
#
# Nothing of Argo CD is committed: a throw-away module of our own (written into the cache)
# requires github.com/argoproj/argo-cd/v2 at the pinned version, copies the replace directives
# of Argo CD's own go.mod (k8s.io/* pinned to v0.31.x, ...) and builds a small multi-call main
# of ours that dispatches, like Argo CD's own cmd/main.go, on argv[0] or ARGOCD_BINARY_NAME to
# only the commands envforge runs: argocd-application-controller, argocd-repo-server and
# argocd-git-ask-pass (the repo server's Git credential helper for HTTPS repositories).
set -euo pipefail

ARGOCD_VERSION="${ENVFORGE_ARGOCD_VERSION:-v2.14.21}"
ARGOCD_MODULE="github.com/argoproj/argo-cd/v2"
CACHE="${ENVFORGE_CACHE:-$HOME/.cache/envforge}"
# "-lo": built with the controller's metrics listener on 127.0.0.1 (see loopback_copy).
TOOLS="$CACHE/argocd/$ARGOCD_VERSION-lo"
BIN="$TOOLS/bin"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CRDS="${ENVFORGE_ARGOCD_CRDS:-$HERE/../../../shared/schemas/argocd}"
NAMESPACE="${ENVFORGE_ARGOCD_NAMESPACE:-argocd}"
# How often Argo CD re-reads Git by itself (Argo CD's default: 180 s). envforge does not wait
# for it: after each commit it asks for a refresh (envforge/gitops/refresh.py).
RESYNC="${ENVFORGE_ARGOCD_RESYNC_SECONDS:-180}"
# The Go module and build caches stay outside the checkout (Go's defaults are under $HOME).
export GOFLAGS="${GOFLAGS:--mod=mod}" CGO_ENABLED=0


write_wrapper_module() {
    local src=$1
    mkdir -p "$src"
    cat >"$src/go.mod" <<MOD
module envforge.local/argocd

go 1.26.0
MOD
    ( cd "$src" && go mod download -json "$ARGOCD_MODULE@$ARGOCD_VERSION" >/dev/null )
    local modfile
    modfile="$(go env GOMODCACHE)/cache/download/$ARGOCD_MODULE/@v/$ARGOCD_VERSION.mod"
    # Argo CD's replace directives (all "module => module version") apply only to its own
    # builds; a module requiring it must repeat them or it resolves other versions.
    go mod edit -json "$modfile" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if new.get("Version"):
        print("-replace=%s=%s@%s" % (lhs, new["Path"], new["Version"]))
' | ( cd "$src" && xargs -r go mod edit )
    cat >"$src/main.go" <<'GO'
// A multi-call Argo CD binary with only the commands envforge runs. Which command runs is
// chosen the way Argo CD's own binary chooses it: ARGOCD_BINARY_NAME, else the file name.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	appcontroller "github.com/argoproj/argo-cd/v2/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v2/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v2/cmd/argocd-repo-server/commands"
)

func main() {
	name := os.Getenv("ARGOCD_BINARY_NAME")
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	commands := map[string]func() *cobra.Command{
		"argocd-application-controller": appcontroller.NewCommand,
		"argocd-repo-server":            reposerver.NewCommand,
		"argocd-git-ask-pass":           gitaskpass.NewCommand,
	}
	newCommand, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: run as argocd-application-controller, argocd-repo-server or argocd-git-ask-pass (file name or ARGOCD_BINARY_NAME)\n", name)
		os.Exit(2)
	}
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
GO
}

# Argo CD 2.14's application controller binds its metrics listener to 0.0.0.0 with no flag to
# choose the address (controller/appcontroller.go). Everything here listens on 127.0.0.1 only,
# so the build uses a copy of the published module with that one line changed (a `replace` to
# the copy: Go refuses overlays of files in the module cache). The build fails if the line is
# not found, so a release that moves it is noticed rather than listening on every interface.
loopback_copy() {  # SRC_DIR: copies the module to SRC_DIR/argo-cd, edits it, replaces to it
    local src=$1 dir file
    dir="$(cd "$src" && go list -m -f '{{.Dir}}' "$ARGOCD_MODULE")"
    rm -rf "$src/argo-cd"
    cp -r "$dir" "$src/argo-cd"
    chmod -R u+w "$src/argo-cd"
    file="$src/argo-cd/controller/appcontroller.go"
    grep -q '"0.0.0.0:%d", metricsPort' "$file" \
        || die "Argo CD $ARGOCD_VERSION: the controller's metrics address line was not found in $file"
    sed -i 's/"0.0.0.0:%d", metricsPort/"127.0.0.1:%d", metricsPort/' "$file"
    ( cd "$src" && go mod edit -replace="$ARGOCD_MODULE=./argo-cd" )
}

cmd_build() {
    if [ -x "$BIN/argocd" ]; then echo "$BIN"; return 0; fi
    command -v go >/dev/null 2>&1 || die "Go is not installed: install Go 1.26 (Argo CD is built from Go modules)"
    local src="$TOOLS/src" t0=$SECONDS
    mkdir -p "$BIN"
    log "building Argo CD $ARGOCD_VERSION (once; long on 2 cores)"
    write_wrapper_module "$src"
    ( cd "$src" && go get "$ARGOCD_MODULE@$ARGOCD_VERSION" >/dev/null 2>&1 && go mod tidy >/dev/null ) \
        || die "the Argo CD module did not download (module in $src)"
    loopback_copy "$src"
    ( cd "$src" && go build -trimpath \
            -ldflags "-s -w -X $ARGOCD_MODULE/common.version=${ARGOCD_VERSION#v}" \
            -o "$BIN/argocd.new" . ) || die "the Argo CD build failed (module in $src)"
    mv "$BIN/argocd.new" "$BIN/argocd"
    local c
    for c in argocd-application-controller argocd-repo-server argocd-git-ask-pass; do
        ln -sf argocd "$BIN/$c"
    done
    log "built in $((SECONDS - t0)) s: $BIN"
    echo "$BIN"
}

# --- running it ----------------------------------------------------------------------------

# Health of an Ingress (argocd-cm resource.customizations.health.networking.k8s.io_Ingress).
# Argo CD's built-in check keeps an Ingress Progressing until an ingress controller writes a
# load-balancer address into its status; a platform whose controller never does (or has none)
# says so with ENVFORGE_ARGOCD_INGRESS_HEALTH=present: an Ingress is Healthy once it exists.
ingress_health_setting() {
    case "${ENVFORGE_ARGOCD_INGRESS_HEALTH:-builtin}" in
    builtin) ;;
    present)
        cat <<'LUA'
  resource.customizations.health.networking.k8s.io_Ingress: |
    hs = {}
    hs.status = "Healthy"
    hs.message = "exists (this platform's ingress controller does not publish a load-balancer address)"
    return hs
LUA
        ;;
    *) die "ENVFORGE_ARGOCD_INGRESS_HEALTH is '$ENVFORGE_ARGOCD_INGRESS_HEALTH': use builtin (Argo CD's check: Healthy once the ingress controller writes a load-balancer address) or present (Healthy once it exists)" ;;
    esac
}

apply_configuration() {  # what the controller reads from the cluster (Argo CD's documented objects)
    local crds="$(go env GOMODCACHE 2>/dev/null)/$ARGOCD_MODULE@$ARGOCD_VERSION/manifests/crds"
    # The CRDs of the pinned release, unmodified, from the module it was built from (kubernetes.sh
    # may have installed a newer line's; the controller and its CRDs go together).
    if [ -f "$crds/application-crd.yaml" ]; then
        "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager envforge-argocd \
            -f "$crds/application-crd.yaml" -f "$crds/applicationset-crd.yaml" \
            -f "$crds/appproject-crd.yaml" >/dev/null
    elif ! "${KUBECTL[@]}" get crd applications.argoproj.io >/dev/null 2>&1; then
        [ -d "$CRDS" ] || die "the Argo CD CRDs are neither installed nor at $CRDS (set ENVFORGE_ARGOCD_CRDS)"
        "${KUBECTL[@]}" apply --server-side -f "$CRDS/application-crd.yaml" \
            -f "$CRDS/applicationset-crd.yaml" -f "$CRDS/appproject-crd.yaml" >/dev/null
    fi
    "${KUBECTL[@]}" wait --for condition=established --timeout=60s \
        crd/applications.argoproj.io crd/appprojects.argoproj.io >/dev/null
    local secret_key
    secret_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    # Settings live in ConfigMaps and Secrets labelled app.kubernetes.io/part-of=argocd (Argo CD's
    # settings manager watches only those). argocd-cmd-params-cm and argocd-rbac-cm are what the
    # install manifests create; their values here are the ones the processes below get as flags
    # (the install's Deployments read them through env), and RBAC is the API server's (not run).
    "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager envforge-argocd -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $NAMESPACE}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: $NAMESPACE
  labels: {app.kubernetes.io/name: argocd-cm, app.kubernetes.io/part-of: argocd}
data:
  # envforge finds what an Application deployed by the tracking-id annotation
  application.resourceTrackingMethod: annotation
  timeout.reconciliation: ${RESYNC}s
$(ingress_health_setting)
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cmd-params-cm
  namespace: $NAMESPACE
  labels: {app.kubernetes.io/name: argocd-cmd-params-cm, app.kubernetes.io/part-of: argocd}
data:
  repo.server: 127.0.0.1:$REPO_PORT
  controller.repo.server.plaintext: "true"
  reposerver.disable.tls: "true"
  redis.server: 127.0.0.1:$REDIS_PORT
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-rbac-cm
  namespace: $NAMESPACE
  labels: {app.kubernetes.io/name: argocd-rbac-cm, app.kubernetes.io/part-of: argocd}
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: $NAMESPACE
  labels: {app.kubernetes.io/name: argocd-secret, app.kubernetes.io/part-of: argocd}
type: Opaque
stringData:
  server.secretkey: $secret_key
---
# Argo CD's own API server creates the default project on start; it does not run here.
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: $NAMESPACE}
spec:
  sourceRepos: ["*"]
  destinations: [{server: "*", namespace: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
YAML
    local url
    for url in "${REPOS[@]}"; do  # a declarative repository Secret per GitOps repository
        "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager envforge-argocd -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: repo-$(printf '%s' "$url" | sha256sum | cut -c1-16)
  namespace: $NAMESPACE
  labels: {argocd.argoproj.io/secret-type: repository}
stringData: {type: git, url: "$url"}
YAML
    done
}

cmd_start() {
    [ -n "${DIR:-}" ] && [ -n "${KUBECONFIG_FILE:-}" ] || die "usage: $0 start DIR KUBECONFIG [REPO_URL...]"
    [ -f "$KUBECONFIG_FILE" ] || die "no kubeconfig at $KUBECONFIG_FILE"
    command -v redis-server >/dev/null 2>&1 || die "redis-server is not installed: apt-get install redis-server (make install does)"
    cmd_build >/dev/null
    mkdir -p "$DIR/pids"
    if running argocd-application-controller; then
        log "already running (state in $DIR)"; cat "$DIR/argocd.env"; return 0
    fi
    local t0=$SECONDS
    KUBECTL=("$(bash "$HERE/kubernetes.sh" version | tail -1)/kubectl" --kubeconfig "$KUBECONFIG_FILE")
    REDIS_PORT=$(free_port); REPO_PORT=$(free_port)
    local repo_metrics controller_metrics
    repo_metrics=$(free_port); controller_metrics=$(free_port)
    apply_configuration
    mkdir -p "$DIR/redis" "$DIR/tmp" "$DIR/tls" "$DIR/ssh" "$DIR/gpg" "$DIR/plugins"
    # Redis: Argo CD's cache of manifests and app state; nothing is persisted.
    start_daemon redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir "$DIR/redis" --protected-mode yes
    wait_for redis 20 redis-cli -p "$REDIS_PORT" ping \
        || { tail -5 "$DIR/redis.log" >&2; die "Redis did not start (log: $DIR/redis.log)"; }
    # The repo server: clones into DIR/tmp; no GPG, TLS or SSH data of its own.
    TMPDIR="$DIR/tmp" ARGOCD_GPG_ENABLED=false ARGOCD_TLS_DATA_PATH="$DIR/tls" \
        ARGOCD_SSH_DATA_PATH="$DIR/ssh" ARGOCD_GNUPGHOME="$DIR/gpg" \
        ARGOCD_PLUGINSOCKFILEPATH="$DIR/plugins" PATH="$BIN:$PATH" \
        start_daemon argocd-repo-server "$BIN/argocd-repo-server" \
        --address 127.0.0.1 --port "$REPO_PORT" --disable-tls \
        --metrics-address 127.0.0.1 --metrics-port "$repo_metrics" \
        --redis "127.0.0.1:$REDIS_PORT" --loglevel "${ENVFORGE_ARGOCD_LOGLEVEL:-info}"
    # The application controller, out of cluster: its own client from --kubeconfig, and the
    # in-cluster destination (https://kubernetes.default.svc) from KUBECONFIG, which Argo CD
    # uses for it when ARGOCD_FAKE_IN_CLUSTER is true. (Its metrics listener is on 127.0.0.1:
    # the build's loopback_copy.)
    TMPDIR="$DIR/tmp" ARGOCD_FAKE_IN_CLUSTER=true KUBECONFIG="$KUBECONFIG_FILE" \
        start_daemon argocd-application-controller "$BIN/argocd-application-controller" \
        --kubeconfig "$KUBECONFIG_FILE" --namespace "$NAMESPACE" \
        --repo-server "127.0.0.1:$REPO_PORT" --repo-server-plaintext \
        --redis "127.0.0.1:$REDIS_PORT" --metrics-port "$controller_metrics" \
        --app-resync "$RESYNC" --status-processors 4 --operation-processors 4 \
        --loglevel "${ENVFORGE_ARGOCD_LOGLEVEL:-info}"
    wait_for argocd-repo-server 60 curl -sf "http://127.0.0.1:$repo_metrics/healthz" \
        || { tail -20 "$DIR/argocd-repo-server.log" >&2; die "the repo server did not start (log: $DIR/argocd-repo-server.log)"; }
    wait_for argocd-application-controller 60 curl -sf "http://127.0.0.1:$controller_metrics/healthz" \
        || { tail -20 "$DIR/argocd-application-controller.log" >&2; die "the application controller did not start (log: $DIR/argocd-application-controller.log)"; }
    cat >"$DIR/argocd.env" <<ENV
export ARGOCD_NAMESPACE=$NAMESPACE ARGOCD_REPO_SERVER=127.0.0.1:$REPO_PORT ARGOCD_REDIS=127.0.0.1:$REDIS_PORT
ENV
    log "Argo CD $ARGOCD_VERSION up in $((SECONDS - t0)) s: controller and repo server (127.0.0.1:$REPO_PORT), Redis 127.0.0.1:$REDIS_PORT; logs in $DIR"
    cat "$DIR/argocd.env"
}

cmd_stop() {
    [ -d "$DIR/pids" ] || return 0
    local name
    for name in argocd-application-controller argocd-repo-server redis; do
        stop_daemon "$name"
    done
}

case "${1:-}" in
build) cmd_build ;;
start)
    DIR="${2:-}"; KUBECONFIG_FILE="${3:-}"; shift $(( $# < 3 ? $# : 3 )); REPOS=("$@")
    [ -n "$DIR" ] && DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"
    cmd_start ;;
stop) DIR="${2:?stop needs DIR}"; cmd_stop ;;
version) echo "argo-cd $ARGOCD_VERSION"; echo "$BIN" ;;
*) echo "usage: $0 build | start DIR KUBECONFIG [REPO_URL...] | stop DIR | version" >&2; exit 2 ;;
esac
