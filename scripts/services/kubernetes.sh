#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, built from pinned Go modules: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl, and its node, one of:
#   ENVFORGE_NODE=real  (the default as root: make test, make demo, CI) a real node (node.sh:
#                       kubelet and kube-proxy built from the same module, containerd, runc,
#                       CNI) and a real ingress controller (ingress.sh: Traefik, routing Ingress
#                       hosts on 127.0.0.1:DIR/ingress/port);
#   ENVFORGE_NODE=kwok  (the default without root) kwok, a node and pod-status simulator
#                       playing the kubelet with the behaviour in kubelet-stages.yaml: pods are
#                       Running without any container, logs and exec are answered on this
#                       machine. Kept only because a node needs root (network namespaces,
#                       cgroups, mounts): a developer running the tests as an ordinary user
#                       still gets a cluster; nothing in the root run uses it;
#   ENVFORGE_NODE=none  no node at all: the control plane alone (pods stay Pending), for tests
#                       of the API server itself that start one of their own.
# The Argo CD CRDs are installed unmodified from ../shared/schemas/argocd (or
# $ENVFORGE_ARGOCD_CRDS).
#
#   kubernetes.sh build            build the binaries once into $ENVFORGE_CACHE (default
#                                  ~/.cache/envforge)/kubernetes/<versions>/bin; prints that dir
#                                  (the kubelet and kube-proxy too, and Traefik through
#                                  ingress.sh build unless ENVFORGE_BUILD_INGRESS=0: the
#                                  real node's parts)
#   kubernetes.sh start DIR        start everything with state under DIR; writes DIR/kubeconfig
#                                  (admin) and prints the API server URL
#   kubernetes.sh env DIR          prints `export KUBECONFIG=DIR/kubeconfig`
#   kubernetes.sh stop DIR         stops what `start DIR` started, by the pids in DIR/pids
#   kubernetes.sh version          prints the pinned versions
#
# Nothing of Kubernetes, etcd or kwok is committed: a throw-away module of our own (written
# into the cache) requires k8s.io/kubernetes at the pinned version and replaces each staging
# module (k8s.io/api, k8s.io/apiserver, ...) with its published v0.N.x, because
# k8s.io/kubernetes's own go.mod points them at local directories and `go install` refuses it.
set -euo pipefail

K8S_VERSION="${ENVFORGE_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ENVFORGE_ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${ENVFORGE_KWOK_VERSION:-v0.8.0}"
if [ "$(id -u)" -eq 0 ]; then NODE_KIND="${ENVFORGE_NODE:-real}"; else NODE_KIND="${ENVFORGE_NODE:-kwok}"; fi
CACHE="${ENVFORGE_CACHE:-$HOME/.cache/envforge}"
TOOLS="$CACHE/kubernetes/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN="$TOOLS/bin"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CRDS="${ENVFORGE_ARGOCD_CRDS:-$HERE/../../../shared/schemas/argocd}"
# The Go module and build caches stay outside the checkout (Go's defaults are under $HOME).
export GOFLAGS="${GOFLAGS:--mod=mod}" CGO_ENABLED=0


build_control_plane() {  # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
    local src="$TOOLS/src/kubernetes" staging="v0.${K8S_VERSION#v1.}"
    mkdir -p "$src"
    cat >"$src/go.mod" <<MOD
module envforge.local/kubernetes-tools

go 1.26.0
MOD
    # Every staging module k8s.io/kubernetes replaces with ./staging/src/... gets its published
    # release instead (v1.37.2 -> v0.37.2).
    ( cd "$src" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null )
    local modfile
    modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$modfile" \
        | while read -r m; do echo "replace $m => $m $staging" >>"$src/go.mod"; done
    local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
    local pkgs=()
    for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    ( cd "$src" && go get "${pkgs[@]/%/@$K8S_VERSION}" >/dev/null 2>&1 \
        && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
             -o "$BIN/" "${pkgs[@]}" )
}

# The node's kubelet and kube-proxy: the same module, flags and build cache as the control plane
# (most of their packages are already compiled by then).
build_node_binaries() {
    local src="$TOOLS/src/kubernetes"
    local pkgs=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
    ( cd "$src" && go get "${pkgs[@]/%/@$K8S_VERSION}" >/dev/null 2>&1 \
        && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
             -o "$BIN/" "${pkgs[@]}" )
}

build_etcd() {  # a tiny main calling etcdmain, the same entry point as etcd's own binary
    local src="$TOOLS/src/etcd"
    mkdir -p "$src"
    cat >"$src/go.mod" <<MOD
module envforge.local/etcd

go 1.26.0
MOD
    cat >"$src/main.go" <<'GO'
// The etcd server: etcd's own entry point, built from the pinned module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    ( cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
        && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" . )
}

build_kwok() {
    GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

cmd_build() {
    command -v go >/dev/null 2>&1 || [ -x "$BIN/kwok" ] \
        || die "Go is not installed: install Go 1.26 (the control plane is built from Go modules)"
    mkdir -p "$BIN"
    local t0=$SECONDS
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
        [ -x "$BIN/$c" ] || { timed_build "Kubernetes $K8S_VERSION (once; 15-30 min on 2 cores)" build_control_plane; break; }
    done
    for c in kubelet kube-proxy; do
        [ -x "$BIN/$c" ] || { timed_build "the kubelet and kube-proxy $K8S_VERSION (once)" build_node_binaries; break; }
    done
    [ -x "$BIN/etcd" ] || timed_build "etcd $ETCD_VERSION (once)" build_etcd
    # kwok only where it runs (a real node, as root, never uses it)
    [ "$NODE_KIND" = real ] || [ -x "$BIN/kwok" ] || timed_build "kwok $KWOK_VERSION (once)" build_kwok
    # The real node's ingress controller (Traefik), so that no test has to wait for its build.
    [ "${ENVFORGE_BUILD_INGRESS:-1}" = 0 ] || bash "$HERE/ingress.sh" build >/dev/null
    [ $((SECONDS - t0)) -gt 1 ] && log "built in $((SECONDS - t0)) s: $BIN"
    echo "$BIN"
}

make_certificates() {
    local pki="$DIR/pki"
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=envforge-test-ca" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
    # clientAuth too: the same certificate is the API server's client certificate for kubelets.
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki/apiserver.ext"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 365 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    # Static tokens: the admin (system:masters) and each control-plane component.
    python3 - "$pki/tokens.csv" <<'PY'
import secrets, sys
rows = [("admin", "admin", '"system:masters"'),
        ("system:kube-controller-manager", "kcm", ""),
        ("system:kube-scheduler", "sched", ""),
        ("kwok", "kwok", '"system:masters"')]
with open(sys.argv[1], "w") as f:
    for user, uid, groups in rows:
        f.write(",".join(filter(None, [secrets.token_hex(24), user, uid, groups])) + "\n")
PY
    chmod 600 "$pki"/*.key "$pki/tokens.csv"
}

token_of() { awk -F, -v u="$1" '$2 == u {print $1}' "$DIR/pki/tokens.csv"; }

write_kubeconfig() {  # file user
    local file=$1 user=$2
    cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: envforge
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $DIR/pki/ca.crt
users:
- name: $user
  user:
    token: $(token_of "$user")
contexts:
- name: envforge
  context: {cluster: envforge, user: $user}
current-context: envforge
KC
    chmod 600 "$file"
}

# What the simulated kubelet answers when the API server proxies `logs` and `exec` to it (kwok's
# server at the node's kubeletEndpoint port, over TLS the API server does not verify, as with a
# kubelet when --kubelet-certificate-authority is unset): every container's log is
# DIR/container.log (CRI log format, followed: append to it and `logs -f` sees the line), and
# exec runs the command on this machine in DIR/exec (no container runtime here: the command
# is not isolated, so tests exec only harmless commands).
write_kubelet_debugging() {
    mkdir -p "$DIR/exec"
    if [ ! -f "$DIR/container.log" ]; then
        for i in $(seq 0 49); do echo "2026-01-01T00:00:00.000000000Z stdout F line $i"; done > "$DIR/container.log"
    fi
    cat > "$DIR/kubelet-debugging.yaml" <<DEBUG
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata: {name: envforge-container-log}
spec:
  logs:
  - logsFile: $DIR/container.log
    previousLogsFile: $DIR/container.log
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata: {name: envforge-local-exec}
spec:
  execs:
  - local: {workDir: $DIR/exec}
DEBUG
    echo "$DIR/kubelet-debugging.yaml"
}

# kwok plays the kubelet of the Node envforge-node-1 (ENVFORGE_NODE=kwok): only without root,
# where a real node cannot start (it needs network namespaces, cgroups and mounts).
start_kwok() {  # port of kwok's kubelet server
    start_daemon kwok "$BIN/kwok" --kubeconfig "$DIR/kwok.kubeconfig" --node-lease-duration-seconds 40 \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --disregard-status-with-annotation-selector kwok.x-k8s.io/status=custom \
        --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
        --node-lease-duration-seconds 40 \
        --server-address "127.0.0.1:$1" --node-port "$1" \
        --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
        --config "$HERE/kubelet-stages.yaml" --config "$(write_kubelet_debugging)"
    "${KUBECTL[@]}" apply -f - >/dev/null <<'NODE'
apiVersion: v1
kind: Node
metadata:
  name: envforge-node-1
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: envforge-node-1, kubernetes.io/os: linux, type: kwok}
spec: {}
NODE
}

cmd_start() {
    [ -n "${DIR:-}" ] || die "usage: $0 start DIR"
    case "$NODE_KIND" in kwok|real|none) ;; *) die "ENVFORGE_NODE is '$NODE_KIND': use real, kwok or none" ;; esac
    cmd_build >/dev/null
    mkdir -p "$DIR/pids" "$DIR/etcd"
    if [ -f "$DIR/pids/kube-apiserver" ] && kill -0 "$(cat "$DIR/pids/kube-apiserver")" 2>/dev/null; then
        log "already running (state in $DIR)"; grep -m1 server: "$DIR/kubeconfig" | awk '{print $2}'; return 0
    fi
    [ -f "$DIR/pki/ca.crt" ] || make_certificates
    local etcd_port etcd_peer kcm_port sched_port kwok_port
    etcd_port=$(free_port); etcd_peer=$(free_port); API_PORT=$(free_port)
    kcm_port=$(free_port); sched_port=$(free_port); kwok_port=$(free_port)
    local t0=$SECONDS
    start_daemon etcd "$BIN/etcd" --data-dir "$DIR/etcd" --name envforge \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "envforge=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync \
        --quota-backend-bytes 2147483648 --log-level warn
    wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health" \
        || { tail -20 "$DIR/etcd.log" >&2; die "etcd did not start (log: $DIR/etcd.log)"; }
    start_daemon kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
        --client-ca-file "$DIR/pki/ca.crt" --token-auth-file "$DIR/pki/tokens.csv" \
        --service-account-key-file "$DIR/pki/sa.pub" \
        --service-account-signing-key-file "$DIR/pki/sa.key" \
        --service-account-issuer https://kubernetes.default.svc \
        --authorization-mode Node,RBAC --service-cluster-ip-range 10.0.0.0/24 \
        --allow-privileged=true --enable-priority-and-fairness=false \
        --endpoint-reconciler-type none --profiling=false \
        --kubelet-preferred-address-types InternalIP \
        --kubelet-client-certificate "$DIR/pki/apiserver.crt" --kubelet-client-key "$DIR/pki/apiserver.key"
    write_kubeconfig "$DIR/kubeconfig" admin
    write_kubeconfig "$DIR/kcm.kubeconfig" system:kube-controller-manager
    write_kubeconfig "$DIR/scheduler.kubeconfig" system:kube-scheduler
    write_kubeconfig "$DIR/kwok.kubeconfig" kwok
    wait_for kube-apiserver 120 "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz \
        || { tail -20 "$DIR/kube-apiserver.log" >&2; die "kube-apiserver did not become ready (log: $DIR/kube-apiserver.log)"; }
    start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$DIR/kcm.kubeconfig" --authentication-kubeconfig "$DIR/kcm.kubeconfig" \
        --authorization-kubeconfig "$DIR/kcm.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
        --use-service-account-credentials --service-account-private-key-file "$DIR/pki/sa.key" \
        --root-ca-file "$DIR/pki/ca.crt" --controllers '*,-nodeipam' \
        --concurrent-gc-syncs 5 --namespace-sync-period 10s
    start_daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$DIR/scheduler.kubeconfig" \
        --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
    KUBECTL=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
    echo "$NODE_KIND" >"$DIR/node-kind"
    [ "$NODE_KIND" = kwok ] && start_kwok "$kwok_port"
    [ -d "$CRDS" ] || die "the Argo CD CRDs are not at $CRDS (set ENVFORGE_ARGOCD_CRDS)"
    "${KUBECTL[@]}" apply --server-side -f "$CRDS/application-crd.yaml" \
        -f "$CRDS/applicationset-crd.yaml" -f "$CRDS/appproject-crd.yaml" >/dev/null
    "${KUBECTL[@]}" create namespace argocd >/dev/null 2>&1 || true
    if [ "$NODE_KIND" = kwok ]; then
        wait_for "node envforge-node-1" 60 "${KUBECTL[@]}" wait --for=condition=Ready node/envforge-node-1 --timeout=1s \
            || { tail -20 "$DIR/kwok.log" >&2; die "kwok did not make the node Ready (log: $DIR/kwok.log)"; }
    elif [ "$NODE_KIND" = real ]; then
        # The node's pods reach the API server and $ENVFORGE_NODE_HOST_PORTS through its gateway.
        bash "$HERE/node.sh" start "$DIR" "$DIR/kubeconfig" \
            || die "the node did not start (logs: $DIR/node/*.log)"
        [ "${ENVFORGE_INGRESS:-1}" = 0 ] || bash "$HERE/ingress.sh" start "$DIR" "$DIR/kubeconfig" >/dev/null \
            || die "the ingress controller did not start (log: $DIR/ingress/traefik.log)"
    fi
    wait_for "default ServiceAccount" 60 "${KUBECTL[@]}" get serviceaccount default -n default \
        || die "the controller manager did not create ServiceAccounts (log: $DIR/kube-controller-manager.log)"
    log "control plane up in $((SECONDS - t0)) s; KUBECONFIG=$DIR/kubeconfig"
    echo "https://127.0.0.1:$API_PORT"
}

cmd_stop() {
    [ -n "${DIR:-}" ] || die "usage: $0 stop DIR"
    [ -d "$DIR/pids" ] || return 0
    bash "$HERE/ingress.sh" stop "$DIR" || true
    bash "$HERE/node.sh" stop "$DIR" || true
    # Each takes 1-3 s to shut down gracefully: all at once, etcd last.
    local name
    for name in kwok kube-scheduler kube-controller-manager kube-apiserver; do
        stop_daemon "$name" &
    done
    wait
    stop_daemon etcd
}

case "${1:-}" in
build) cmd_build ;;
start) DIR="${2:-}"; [ -n "$DIR" ] && DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"; cmd_start ;;
stop) DIR="${2:-}"; cmd_stop ;;
env) echo "export KUBECONFIG=${2:?env needs DIR}/kubeconfig" ;;
version) echo "kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION"; echo "$BIN" ;;
node) echo "$NODE_KIND" ;;
*) echo "usage: $0 build | start DIR | stop DIR | env DIR | version" >&2; exit 2 ;;
esac
