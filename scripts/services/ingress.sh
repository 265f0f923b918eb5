#!/usr/bin/env bash
# The cluster's ingress controller: Traefik v3 (the real one, built from its pinned Go module),
# running on this machine beside the node of node.sh, watching the API server's Ingresses,
# routing their hosts on 127.0.0.1:PORT to the pods' IPs, and writing each Ingress's status
# address. It implements the IngressClass named by $ENVFORGE_INGRESS_CLASS, the same setting
# envforge renders Ingresses with (default nginx: a class name is the cluster's choice, its
# controller field says traefik.io/ingress-controller), made the cluster's default class too.
#
#   ingress.sh build                 build traefik once into the tools cache; prints its path
#   ingress.sh start DIR KUBECONFIG  start it with state under DIR/ingress; the HTTP port is
#                                    $ENVFORGE_INGRESS_PORT or a free one, written to
#                                    DIR/ingress/port and printed
#   ingress.sh stop DIR              stop it (by its pid)
#
# Nothing of Traefik is committed. A throw-away module of our own builds Traefik's own command
# from a copy of the pinned module (Traefik's go.mod has replace lines, so `go install` refuses
# it), with what the Go module proxy here cannot serve taken out or swapped, in three places:
#   - github.com/traefik/traefik/dynamic/ext, Traefik's extension point for its commercial
#     edition (two empty structs in the open-source one), is a directory of Traefik's repository
#     that the published module leaves out: the wrapper declares the two empty types itself;
#   - the ACME DNS-01 challenge providers (lego's providers/dns, which pulls in some forty cloud
#     SDKs, seven of them not served here) are cut out: a DNS challenge is refused with an
#     error naming it (nothing here can reach an ACME server anyway);
#   - the commit of Traefik's fork of github.com/abbot/go-http-auth (basic/digest auth
#     middlewares) that Traefik pins is not served: the fork's earlier commit of 2020-03-24 is
#     (the one Traefik pinned for years; the same API).
# Routing, the Kubernetes Ingress provider and the Ingress status it writes are Traefik's own.
set -euo pipefail

TRAEFIK_VERSION="${ENVFORGE_TRAEFIK_VERSION:-v3.7.13}"
CACHE="${ENVFORGE_CACHE:-$HOME/.cache/envforge}"
TOOLS="$CACHE/ingress/traefik-$TRAEFIK_VERSION"
TRAEFIK="$TOOLS/bin/traefik"
INGRESS_CLASS="${ENVFORGE_INGRESS_CLASS:-nginx}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
export GOFLAGS="${GOFLAGS:--mod=mod}" CGO_ENABLED=0


build_traefik() {
    local src="$TOOLS/src" orig
    rm -rf "$src"; mkdir -p "$src/ext" "$TOOLS/bin"
    cat >"$src/go.mod" <<MOD
module envforge.local/traefik

go 1.26.0

require github.com/traefik/traefik/v3 $TRAEFIK_VERSION

replace github.com/traefik/traefik/v3 => ./traefik

replace github.com/traefik/traefik/dynamic/ext => ./ext

replace github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
MOD
    cat >"$src/ext/go.mod" <<'MOD'
module github.com/traefik/traefik/dynamic/ext

go 1.24.0
MOD
    cat >"$src/ext/ext.go" <<'GO'
// Package ext is Traefik's extension point of its dynamic configuration: empty in open-source
// Traefik, whose go.mod points it at a local directory the published module does not carry.
package ext

// HTTP extends dynamic.HTTP (nothing in open-source Traefik).
type HTTP struct{}

// Router extends dynamic.Router (nothing in open-source Traefik).
type Router struct{}
GO
    orig="$(cd "$src" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$orig" ] || die "could not download github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
    cp -r "$orig" "$src/traefik"
    chmod -R u+w "$src/traefik"
    # Traefik's other replace lines (its mux fork) and excludes, as its go.mod has them.
    sed -n 's#^[[:space:]]*\(github.com/gorilla/mux\) => \([^[:space:]]*\) \(v[^[:space:]]*\)$#replace \1 => \2 \3#p; s#^exclude \(.*\)#exclude \1#p' \
        "$src/traefik/go.mod" >>"$src/go.mod"
    local acme="$src/traefik/pkg/provider/acme/provider.go"
    grep -q 'dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)' "$acme" \
        || die "Traefik $TRAEFIK_VERSION's ACME provider changed: revisit build_traefik's edit"
    sed -i -e '\#"github.com/go-acme/lego/v5/providers/dns"#d' \
        -e 's#dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)#nil, fmt.Errorf("the ACME DNS-01 challenge providers are not built into this Traefik (envforge ingress.sh): %s", p.DNSChallenge.Provider)#' \
        "$acme"
    ( cd "$src" && go get "github.com/traefik/traefik/v3/cmd/traefik@$TRAEFIK_VERSION" \
      && go build -trimpath \
          -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
          -o "$TRAEFIK" github.com/traefik/traefik/v3/cmd/traefik )
}

cmd_build() {
    if [ ! -x "$TRAEFIK" ]; then
        command -v go >/dev/null 2>&1 || die "Go is not installed: install Go 1.26 (Traefik is built from its Go module)"
        local t0=$SECONDS
        log "building Traefik $TRAEFIK_VERSION (once)"
        build_traefik
        log "built in $((SECONDS - t0)) s: $TRAEFIK"
    fi
    echo "$TRAEFIK"
}

cmd_start() {
    local kubeconfig=$1 state="$DIR/ingress"
    [ -f "$kubeconfig" ] || die "no kubeconfig at $kubeconfig (start the control plane first)"
    cmd_build >/dev/null
    mkdir -p "$state" "$DIR/pids"
    if [ -f "$DIR/pids/traefik" ] && kill -0 "$(cat "$DIR/pids/traefik")" 2>/dev/null; then
        cat "$state/port"; return 0
    fi
    local port ping server token ca kubectl
    port="${ENVFORGE_INGRESS_PORT:-$(free_port)}"; ping="$(free_port)"
    server="$(awk '$1 == "server:" {print $2; exit}' "$kubeconfig")"
    ca="$(awk '$1 == "certificate-authority:" {print $2; exit}' "$kubeconfig")"
    kubectl="$(bash "$HERE/kubernetes.sh" version | tail -1)/kubectl"
    # Traefik reads the API as its own ServiceAccount, with the ClusterRole its docs give.
    "$kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null <<RBAC
apiVersion: v1
kind: Namespace
metadata: {name: ingress-traefik}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: ingress-traefik}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: envforge-traefik}
rules:
- apiGroups: [""]
  resources: [services, secrets, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [extensions, networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [extensions, networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: envforge-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: envforge-traefik}
subjects:
- {kind: ServiceAccount, name: traefik, namespace: ingress-traefik}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: $INGRESS_CLASS
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: traefik.io/ingress-controller}
RBAC
    token="$("$kubectl" --kubeconfig "$kubeconfig" create token traefik -n ingress-traefik --duration 87600h)"
    printf '%s' "$token" >"$state/token"; chmod 600 "$state/token"
    cat >"$state/traefik.yaml" <<YAML
# Traefik's static configuration for one envforge cluster.
# A stop should not wait Traefik's default 10 s for in-flight requests.
entryPoints:
  web: {address: "127.0.0.1:$port", transport: {lifeCycle: {graceTimeOut: 1s}}}
  traefik: {address: "127.0.0.1:$ping", transport: {lifeCycle: {graceTimeOut: 1s}}}
ping: {entryPoint: traefik}
log: {level: WARN, noColor: true}
global: {checkNewVersion: false, sendAnonymousUsage: false}
providers:
  kubernetesIngress:
    endpoint: "$server"
    token: "$token"
    certAuthFilePath: "$ca"
    ingressClass: "$INGRESS_CLASS"
    # The status address every Ingress gets: where its hosts answer on this machine.
    ingressEndpoint: {ip: 127.0.0.1}
YAML
    chmod 600 "$state/traefik.yaml"
    nohup "$TRAEFIK" --configFile "$state/traefik.yaml" >"$state/traefik.log" 2>&1 &
    echo $! >"$DIR/pids/traefik"
    local deadline=$((SECONDS + 60))
    until curl -sf "http://127.0.0.1:$ping/ping" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] && kill -0 "$(cat "$DIR/pids/traefik")" 2>/dev/null \
            || { tail -20 "$state/traefik.log" >&2; die "traefik did not start (log: $state/traefik.log)"; }
        sleep 0.3
    done
    echo "$port" >"$state/port"
    log "traefik $TRAEFIK_VERSION routes Ingresses on 127.0.0.1:$port"
    echo "$port"
}

cmd_stop() { stop_daemon traefik; }

DIR="${2:-}"
case "${1:-}" in
build) cmd_build ;;
start)
    [ -n "$DIR" ] && [ -n "${3:-}" ] || { echo "usage: $0 start DIR KUBECONFIG" >&2; exit 2; }
    DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"; cmd_start "$3" ;;
stop) [ -n "$DIR" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; cmd_stop ;;
version) echo "traefik $TRAEFIK_VERSION"; echo "$TRAEFIK" ;;
*) echo "usage: $0 build | start DIR KUBECONFIG | stop DIR | version" >&2; exit 2 ;;
esac
